"""Every feature the model sees that is not one of the user's columns as given, with the column it
comes from and the setting of ``loopml.yaml`` that turns it off.

Training records the list as ``metrics["derived_features"]`` (one flat dict per feature); the
training report shows it as its "Derived features" table, so what the defaults added is never a
surprise.
"""

from __future__ import annotations

from loopml.config import Settings
from loopml.features import FeatureColumns, window_specs
from loopml.features.build import relative_features

__all__ = ["derived_features"]

_SEQUENCE_STAT = {"mean": "mean", "std": "standard deviation", "slope": "slope"}


def derived_features(settings: Settings, columns: FeatureColumns) -> list[dict[str, str]]:
    """One row per derived feature of ``columns`` (the fitted model's): ``feature``, ``from`` (the
    user's columns it is computed from), ``kind`` and ``turn off`` (the setting).

    Examples
    --------
    >>> from loopml.config import Settings
    >>> settings = Settings(name="m", target="y", event_time="ts", source={"path": "d.csv"})
    >>> cols = FeatureColumns(numeric=("x",), categorical=(), datetime=("ts",))
    >>> derived_features(settings, cols)[0]["feature"]
    'ts_hour'
    """
    return [*_datetime_parts(settings, columns), *_windows(settings, columns), *_sequences(settings)]


def _datetime_parts(settings: Settings, columns: FeatureColumns) -> list[dict[str, str]]:
    parts = settings.features.datetime_parts
    rows = []
    for column in columns.datetime:
        if column == settings.event_time:
            off = "leave features.datetime_parts out of loopml.yaml (the event time then only orders rows)"
        else:
            off = f"features.drop: [{column}] (or features.datetime_parts: [] for every datetime column)"
        rows += [
            {
                "feature": f"{column}_{part}",
                "from": column,
                "kind": f"datetime part ({part})",
                "turn off": off,
            }
            for part in parts
        ]
    return rows


def _windows(settings: Settings, columns: FeatureColumns) -> list[dict[str, str]]:
    config = settings.features
    prefixes = [f"{spec.prefix}__" for spec in window_specs(config)]
    rows = []
    for i, (window, prefix) in enumerate(zip(config.windows, prefixes, strict=True)):
        source = ", ".join(c for c in (window.entity, window.column) if c)
        delay = f", events older than {window.label_delay}" if window.label_delay else ""
        rows += [
            {
                "feature": name,
                "from": source,
                "kind": f"window aggregate per {window.entity}{delay}",
                "turn off": f"features.windows[{i}] (its aggs and windows)",
            }
            for name in columns.windows
            if name.startswith(prefix)
        ]
    for name, numerator, denominator in relative_features(config, columns.numeric):
        index = next(i for i, prefix in enumerate(prefixes) if name.startswith(prefix))
        rows.append(
            {
                "feature": name,
                "from": f"{numerator} / {denominator}",
                "kind": "ratio to the relative_to window",
                "turn off": f"features.windows[{index}].relative_to",
            }
        )
    return rows


def _sequences(settings: Settings) -> list[dict[str, str]]:
    sequences = settings.features.sequences
    if sequences is None:
        return []
    columns = ", ".join(sequences.columns) if sequences.columns else "every numeric column"
    return [
        {
            "feature": f"<column>_{stat}_{sequences.window}",
            "from": columns,
            "kind": f"{_SEQUENCE_STAT[stat]} over each {sequences.entity}'s last {sequences.window} rows",
            "turn off": "features.sequences.stats (or features.sequences)",
        }
        for stat in sequences.stats
    ]
