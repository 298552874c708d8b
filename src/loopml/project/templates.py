"""The text of the project files ``loopml init`` writes: the commented blank template, and a project
for one data file (:func:`render_project`), both explaining their keys in comments."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["BLANK_TEMPLATE", "render_project", "yaml_scalar"]

_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./-]*$")


def yaml_scalar(value: Any) -> str:
    """``value`` as a YAML scalar: plain when that reads back the same, else double-quoted.

    Examples
    --------
    >>> yaml_scalar("Machine failure"), yaml_scalar("Air temperature [K]"), yaml_scalar("yes")
    ('"Machine failure"', '"Air temperature [K]"', '"yes"')
    >>> yaml_scalar("customer_id"), yaml_scalar("30d"), yaml_scalar("1.5"), yaml_scalar(None)
    ('customer_id', '30d', '"1.5"', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.match(text) and yaml.safe_load(text) == text:  # not a number, a boolean, a date ...
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


BLANK_TEMPLATE = """\
# loopml project file. Fill in `source` and `target` (uncomment them below), then run
# `loopml check` (it compares every column named here with the data's columns), `loopml ingest`,
# `loopml train` and `loopml serve`. Faster: `loopml init DIR --from FILE --target COLUMN` writes
# this file for your own CSV or Parquet file. Every key not written here has a default.
name: {name}                 # the model's and its data set's name in the registry

# What the model predicts: binary (a 0/1 or true/false column), multiclass (a few classes) or
# regression (a number). forecast and ranking need their own section: see `loopml init --example`.
task: binary

# Where the training data comes from. Files: kind csv or parquet, path relative to this folder
# (a file, a folder of files, or a glob such as data/*.csv). SQL: kind sql, url (any SQLAlchemy
# URL) and a table or a query.
# source:
#   kind: csv
#   path: data/orders.csv
#   options: {{sep: ";"}}      # passed to the reader (pandas.read_csv for CSV)
#   watermark: updated_at    # incremental ingest: each ingest reads only rows newer than the last

# The column to predict.
# target: churned

# A column unique per row: never a feature, checked unique at ingest, echoed in predictions.
# id_column: order_id
# The time of each row: the holdout is the newest rows (never a random split), monitoring windows
# and window features follow it. Not a feature unless features.include names it or
# features.datetime_parts is set.
# event_time: ordered_at

# Cleaning before the data contract is enforced. Rows that fail go to quarantine with the rule and
# the column that failed (`loopml data quarantine`); nothing is dropped silently.
cleaning:
  trim: true                 # strip spaces around text; blank text is missing
  dedupe: none               # none | id (a repeated id is quarantined) | row (a repeated row)
  missing: {{}}                # per column: keep | quarantine | {{fill: value}}
  out_of_range: quarantine   # or clip, for values outside the contract's min/max
  unknown_category: quarantine   # or keep, for a category the contract does not list
  filters: []                # e.g. - {{rule: cancelled, column: status, op: eq, value: C}}

# The data contract is inferred at the first ingest (contracts/<name>.v1.yaml: types, not-null,
# min/max, categories, a unique id) and enforced after. Rules written here win over inferred ones.
contract:
  category_cap: 50           # text columns with up to this many values get an allowed list
  columns: {{}}                # e.g. amount: {{min: 0.01, max: 10000}}

# Which columns feed the model: by default every column but the target, the id and the event time.
features:
  drop: []                   # leaks (known only after the outcome), other labels, free text
  # include: [a, b]          # only these columns
  # categorical: [code]      # numbers that are really categories
  # datetime_parts: [hour, dayofweek, is_weekend, is_night]   # the event time as features
  # windows:                 # per-entity aggregates over time windows, point-in-time correct
  #   - {{entity: customer_id, column: amount, aggs: [count, mean], windows: [1d, 7d]}}

# How a model is fitted and judged on the holdout.
train:
  model: lightgbm            # lightgbm | hist_gradient_boosting | logistic | ridge | module:Class
  holdout_fraction: 0.2      # the newest 20% of rows with an event time
  # metric: average_precision   # default: the task's primary metric
  tune:
    trials: 0                # e.g. 30 for an Optuna search

# The prediction API (`loopml serve`).
serve:
  host: 127.0.0.1
  port: 8000
  log_predictions: true      # the prediction log feeds monitoring and retraining

# Monitoring: drift and performance per window of predictions.
monitor:
  window: 1d                 # should hold at least min_rows predictions at your traffic
  min_rows: 200              # fewer predictions in a window: no drift verdict

# When to retrain (`loopml worker` checks the policy); every trigger is off by default.
retrain:
  schedule: null             # cron, e.g. '0 3 * * *', '0 9 * * MON-FRI' or '@daily' (UTC; see timezone)
  new_labels: 0              # retrain after this many new labels
  drift_features: 0          # retrain when this many features drift

# Predictions and alerts that trigger work in other systems (webhook, sql, redis, rabbitmq, nats,
# log): see the fraud example (`loopml init DIR --example fraud`).
actions:
  endpoints: {{}}
  rules: []
"""


def _lines(pairs: list[tuple[str, Any, str]], indent: str = "") -> list[str]:
    """``key: value`` lines with their comments aligned at column 29."""
    out = []
    for key, value, comment in pairs:
        line = f"{indent}{key}: {yaml_scalar(value) if not isinstance(value, list) else _flow(value)}"
        out.append(f"{line:<27}# {comment}" if comment else line)
    return out


def _flow(values: list[Any]) -> str:
    return "[" + ", ".join(yaml_scalar(v) for v in values) + "]"


def render_project(facts: Mapping[str, Any]) -> str:
    """The project file for one data file, from what ``init --from`` found (``facts``: name,
    origin, kind, path, options, target, task, task_reason, stratified, id_column, event_time,
    window, min_rows, window_reason, missing_targets)."""
    f = facts
    text = [
        f"# loopml project file written by `loopml init --from {f['origin']}`; edit freely.",
        "# Next: `loopml check` (every column named here against the file's columns), then",
        "# `loopml ingest`, `loopml train`, `loopml serve`. Keys not written here have defaults.",
        f"name: {yaml_scalar(f['name'])}",
        "",
        "# What the model predicts: binary (0/1), multiclass (a few classes) or regression (a number).",
        *_comment(f"Inferred from the target: {f['task_reason']}."),
        f"task: {f['task']}",
        f"target: {yaml_scalar(f['target'])}",
        "",
        "# The data: a path relative to this folder (or absolute); CSV options go to pandas.read_csv.",
        "source:",
        *_lines([("kind", f["kind"], ""), ("path", f["path"], "")], "  "),
        *([f"  options: {{sep: {yaml_scalar(f['options']['sep'])}}}"] if f["options"] else []),
        "  # watermark: <column>     # incremental ingest: each ingest reads only rows newer than the last",
        "",
        "# A column unique per row: never a feature, checked unique at ingest, echoed in predictions.",
        _role("id_column", f["id_column"]),
        "# The time of each row: the holdout is the newest rows, not a random sample. It is not a feature",
        "# unless features.include names it or features.datetime_parts is set.",
        _role("event_time", f["event_time"]),
        "",
        *_cleaning(f),
        "# The contract (types, not-null, min/max, categories, unique id) is inferred at the first",
        "# `loopml ingest` into contracts/; rules here win, e.g. columns: {amount: {min: 0, max: 5000}}.",
        "contract:",
        "  category_cap: 50         # text columns with up to this many values get an allowed list",
        "",
        "# Features: every column but the target, the id and the event time, unless listed here.",
        "features:",
        "  drop: []                 # leaks (known only after the outcome), other labels, free text",
        "  # include: [a, b]        # only these columns",
        "  # categorical: [code]    # numbers that are really categories",
        "  # datetime_parts: [hour, dayofweek, is_weekend, is_night]   # the event time as features",
        "",
        "train:",
        "  model: lightgbm          # lightgbm | hist_gradient_boosting | logistic | ridge | module:Class",
        "  holdout_fraction: 0.2    # " + _holdout(f),
        "",
        *_comment(f"Monitoring windows, chosen from the data: {f['window_reason']}."),
        "monitor:",
        *_lines(
            [("window", f["window"], ""), ("min_rows", f["min_rows"], "fewer predictions: no drift verdict")],
            "  ",
        ),
        "",
        "serve:",
        "  host: 127.0.0.1",
        "  port: 8000",
        "",
    ]
    return "\n".join(text)


def _comment(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, 98)]


def _role(key: str, value: str | None) -> str:
    return f"{key}: {yaml_scalar(value)}" if value is not None else f"# {key}: <column>"


def _holdout(facts: Mapping[str, Any]) -> str:
    if facts["event_time"] is not None:
        return "the newest 20% of rows by event_time"
    if facts["stratified"]:
        return "a stratified random 20% (no event_time)"
    return "the last 20% of rows in file order (no event_time)"


def _cleaning(facts: Mapping[str, Any]) -> list[str]:
    count = facts["missing_targets"]
    if not count:
        return []
    return [
        f"# {count:,} rows have no target: they go to quarantine (`loopml data quarantine`).",
        "cleaning:",
        "  missing:",
        f"    {yaml_scalar(facts['target'])}: quarantine",
        "",
    ]
