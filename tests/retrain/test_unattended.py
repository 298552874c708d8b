"""The loop unattended: kill -9 at random points of a cycle, a failing cycle beside a live server,
rollback under load, and "which model served at time T"."""

from __future__ import annotations

import multiprocessing
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from loopml.cli import app
from loopml.errors import BusyError
from loopml.examples import write_example
from loopml.project import Project
from loopml.registry import alias_history, get_alias, version_at
from loopml.retrain import list_events, run_cycle
from loopml.retrain.cycle import ACTOR
from loopml.retrain.events import OPEN
from loopml.serve import ServerProcess
from loopml.store import tables, utcnow

TTL = 0.3  # the cycle lease; a killed worker blocks the next one at most this long


def _tiny(root: Path, *, in_child: bool = False, **retrain: object) -> Project:
    """A project whose cycle takes well under a second: little data, ten trees, no windows."""
    write_example(
        "fraud",
        root,
        days=50,
        n_customers=150,
        n_terminals=300,
        terminal_compromise_rate=3.0,
        regime_change_day=None,
    )
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["features"].pop("windows")
    config["source"]["watermark"] = "tx_datetime"  # a cycle's ingest finds nothing new: fast
    config["train"].update(bootstrap=0, report=False, params={"n_estimators": 10, "n_jobs": 1, "verbose": -1})
    # Retraining on the same rows gives the same model: a gain of 0 passes, so cycles promote (with
    # unseen_share 1 the challenger learns no row newer than the champion's, both judged on the rest).
    config["retrain"] = {
        "gate": {"min_improvement": 0.0, "calibration_tolerance": 10, "unseen_share": 1.0},
        # No refit: a champion refitted on the holdout would win every gate on these unchanging rows.
        "refit": False,
        "cooldown": "1s",
        **retrain,
    }
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    if in_child:
        _forked(_prepare_at, root)
    else:
        _prepare(Project.open(root))
    return Project.open(root)


def _prepare(proj: Project) -> None:
    proj.ingest()
    proj.train()


# Children start from a fork server: a clean process that imported loopml and never ran LightGBM.
# A plain os.fork() of this test process is not safe: the pytest worker may have trained a model in
# an earlier test, and a forked child of a process whose OpenMP (libgomp) threads have run hangs in
# its first parallel region. Forking that clean server keeps each child's start cheap.
_CHILDREN = multiprocessing.get_context("forkserver")
_CHILDREN.set_forkserver_preload(["loopml.project", "loopml.retrain", "lightgbm"])
CHILD_TIMEOUT_S = 120


def _prepare_at(root: str) -> None:
    _prepare(Project.open(Path(root)))


def _cycle_at(root: str, started: Event | None = None) -> None:
    """A forced cycle of the project at ``root``; ``started`` (an Event) is set once the project is
    open, just before the cycle begins, so that a kill lands in the cycle, not in the child's start."""
    project = Project.open(Path(root))
    if started is not None:
        started.set()
    _cycle(project)


def _forked(work: Callable[[str], None], root: Path) -> None:
    """Run ``work(root)`` in a child process and wait for it; it must succeed."""
    child = _CHILDREN.Process(target=work, args=(str(root),))
    child.start()
    _finish(child, work.__name__)


def _finish(child: BaseProcess, what: str, *, killed: bool = False) -> None:
    """Wait for ``child`` (at most CHILD_TIMEOUT_S); unless it was ``killed``, it must exit 0."""
    child.join(CHILD_TIMEOUT_S)
    if child.exitcode is None:
        child.kill()
        child.join()
        raise AssertionError(f"{what} did not finish in {CHILD_TIMEOUT_S} s")
    assert killed or child.exitcode == 0, f"{what} exited with {child.exitcode}"


def _cycle(proj: Project) -> str:
    """Run one forced cycle to its end, waiting out a lease a killed worker left behind."""
    for _ in range(40):
        try:
            return run_cycle(proj.settings, proj.store, force=True, lease_ttl_s=TTL).status
        except BusyError:
            time.sleep(TTL / 2)
    raise AssertionError("the lease of a dead worker never expired")


def _in_child(root: Path, kill_after: float | None) -> float:
    """Run a cycle in a child process; SIGKILL it ``kill_after`` seconds into the cycle when given.
    Returns the seconds from the cycle's start to the child's end (or its kill)."""
    started = _CHILDREN.Event()
    child = _CHILDREN.Process(target=_cycle_at, args=(str(root), started))
    child.start()
    assert started.wait(CHILD_TIMEOUT_S), "the child never opened the project"
    began = time.perf_counter()
    if kill_after is not None:
        time.sleep(kill_after)
        child.kill()
    _finish(child, "a cycle", killed=kill_after is not None)
    return time.perf_counter() - began


def _assert_consistent(engine: Engine, name: str) -> None:
    """Aliases, their history and the cycle events tell one story: no half-promotion."""
    with engine.connect() as conn:
        aliases = dict(
            conn.execute(
                select(tables.model_aliases.c.alias, tables.model_aliases.c.version).where(
                    tables.model_aliases.c.name == name
                )
            ).all()
        )
    for alias, version in aliases.items():
        assert alias_history(engine, name, alias)[-1].version == version, alias
    cycles = {e.id: e for e in list_events(engine, name, "cycle", limit=1000)}
    moves = [m for m in alias_history(engine, name, "champion") if m.actor == ACTOR]
    by_cycle = Counter(
        int(m.group(1)) for m in (re.match(r"retrain cycle (\d+):", x.reason) for x in moves) if m
    )
    for event in cycles.values():
        promoted = event.status == "promoted"
        assert by_cycle.get(event.id, 0) == (1 if promoted else 0), (event, by_cycle)
    for cycle_id, count in by_cycle.items():
        assert cycles[cycle_id].status == "promoted" and count == 1
    for move in moves:
        if (match := re.match(r"retrain cycle (\d+):", move.reason)) is not None:
            assert cycles[int(match.group(1))].challenger_version == move.version


def test_kill_minus_9_at_random_points_never_half_promotes(tmp_path: Path) -> None:
    # Every training runs in a child process (see _CHILDREN), never here.
    proj = _tiny(tmp_path / "p", in_child=True)
    length = _in_child(proj.settings.project_dir, None)  # one whole cycle: how long one takes here
    assert length < 5, f"a tiny cycle took {length:.1f} s"
    rng = random.Random(7)
    statuses = Counter()
    for _ in range(20):
        _in_child(proj.settings.project_dir, kill_after=rng.uniform(0, length * 1.1))
        events = list_events(proj.store.engine, proj.name, "cycle", limit=1)
        statuses[events[0].status if events else "none"] += 1
        _assert_consistent(proj.store.engine, proj.name)
        proj.store.engine.dispose()
        _in_child(proj.settings.project_dir, None)  # the next run completes
        assert list_events(proj.store.engine, proj.name, "cycle", limit=1)[0].status == "promoted"
        _assert_consistent(proj.store.engine, proj.name)
        assert not [e for e in list_events(proj.store.engine, proj.name, "cycle") if e.status in OPEN]
    assert sum(statuses.values()) == 20
    assert len(statuses) >= 2, statuses  # the kills landed at different points of the cycle


def test_serving_survives_a_failing_cycle_and_a_rollback_under_load(tmp_path: Path) -> None:
    root = tmp_path / "p"
    proj = _tiny(root)
    assert _cycle(proj) == "promoted" and get_alias(proj.store.engine, proj.name, "champion") == 2
    record = _records(proj)[0]
    config = yaml.safe_load((root / "loopml.yaml").read_text())
    config["train"]["model"] = "no_such_module:Estimator"
    (root / "loopml.yaml").write_text(yaml.safe_dump(config))
    broken = Project.open(root)
    with ServerProcess(str(root)) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        with _Load(client, proj.name, record) as load:  # a cycle fails while the API takes traffic
            with pytest.raises(Exception, match="no_such_module"):
                run_cycle(broken.settings, broken.store, force=True, lease_ttl_s=TTL)
            time.sleep(0.5)
        assert load.failed == 0 and load.versions == {2}, (load.errors[:3], load.versions)
        assert list_events(proj.store.engine, proj.name, "cycle")[0].status == "failed"
        with _Load(client, proj.name, record, threads=4) as load:  # then a rollback under load
            time.sleep(0.3)
            result = CliRunner().invoke(app, ["models", "rollback", "-p", str(root)])
            assert result.exit_code == 0, result.output
            rolled_at = time.monotonic()
            while load.last_version != 1 and time.monotonic() - rolled_at < 5:
                time.sleep(0.05)
            swapped = time.monotonic() - rolled_at
            time.sleep(0.3)
            load.after_swap.clear()
            time.sleep(0.5)
    assert load.failed == 0, load.errors[:3]
    assert load.requests > 50 and load.versions == {1, 2}
    assert swapped < 3, f"the API took {swapped:.1f} s to follow the rollback"
    assert load.after_swap == {1}, load.after_swap  # soon every response carries the old version


def test_the_alias_history_answers_which_model_served_at_time_t(tmp_path: Path) -> None:
    proj = _tiny(tmp_path / "p")
    engine, name = proj.store.engine, proj.name
    marks = [(utcnow(), 1)]
    for expected in (2, 3):
        time.sleep(0.01)
        assert _cycle(proj) == "promoted"
        marks.append((utcnow(), expected))
    CliRunner().invoke(app, ["models", "rollback", "-p", str(proj.settings.project_dir)])
    marks.append((utcnow() + timedelta(seconds=1), 2))
    first = alias_history(engine, name, "champion")[0].created_at
    assert version_at(engine, name, "champion", first - timedelta(seconds=1)) is None
    for t, version in marks:
        assert version_at(engine, name, "champion", t) == version, (t, version)
    # Every move is answerable to the microsecond: at its own time T the new version serves.
    for move in alias_history(engine, name, "champion"):
        assert version_at(engine, name, "champion", move.created_at) == move.version


def _records(proj: Project, frame: object = None) -> list[dict[str, object]]:
    import pandas as pd

    from loopml.examples._demo import jsonable_records

    if frame is None:
        frame = pd.read_parquet(proj.settings.project_dir / "data" / "replay.parquet").head(5)
    assert isinstance(frame, pd.DataFrame)
    model = proj.models.load()
    return jsonable_records(frame, [proj.settings.id_column or "", *model.input_columns])


class _Load:
    """Threads posting the same record as fast as they can; counts failures and versions seen."""

    def __init__(self, client: httpx.Client, name: str, record: dict[str, object], threads: int = 2) -> None:
        self.client, self.name, self.record = client, name, record
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests = self.failed = 0
        self.errors: list[str] = []
        self.versions: set[int] = set()
        self.after_swap: set[int] = set()
        self.last_version: int | None = None
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> _Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                response = self.client.post(f"/v1/models/{self.name}/predict", json=self.record)
                ok, body = response.status_code == 200, response.text
                version = response.json()["model_version"] if ok else None
            except httpx.HTTPError as exc:
                ok, body, version = False, repr(exc), None
            with self.lock:
                self.requests += 1
                if not ok:
                    self.failed += 1
                    self.errors.append(body[:200])
                else:
                    self.versions.add(version)
                    self.after_swap.add(version)
                    self.last_version = version


def test_a_shadowing_challenger_scores_live_traffic_unseen_then_is_judged_on_it(tmp_path: Path) -> None:
    import pandas as pd

    from loopml.monitor import run_monitor
    from loopml.retrain import shadow_pairs
    from loopml.retrain.events import get_event

    root = tmp_path / "p"
    proj = _tiny(root, shadow="1h")
    shadowing = run_cycle(proj.settings, proj.store, force=True, lease_ttl_s=TTL)
    assert shadowing.status == "shadowing" and shadowing.challenger_version == 2, shadowing.to_dict()
    engine, name = proj.store.engine, proj.name
    assert get_alias(engine, name, "champion") == 1 and get_alias(engine, name, "challenger") == 2
    frame = pd.read_parquet(root / "data" / "replay.parquet")
    frame = pd.concat([frame[frame["tx_fraud"] == 1].head(15), frame[frame["tx_fraud"] == 0].head(45)])
    records = _records(proj, frame.sort_values("tx_datetime"))
    labels: list[dict[str, object]] = []
    with ServerProcess(str(root)) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        for start in range(0, len(records), 20):
            batch = records[start : start + 20]
            response = client.post(f"/v1/models/{name}/predict", json=batch)
            assert response.status_code == 200 and response.json()["model_version"] == 1
            for prediction, record in zip(response.json()["predictions"], batch, strict=True):
                assert "shadow_of" not in prediction  # the challenger's score never reaches the client
                label = int(frame.set_index("transaction_id").loc[record["transaction_id"], "tx_fraud"])
                labels.append({"prediction_id": prediction["prediction_id"], "label": label})
        assert client.post("/v1/feedback", json=labels).status_code == 200
    since = get_event(engine, shadowing.event_id or 0).started_at
    pairs = shadow_pairs(engine, name, 2, since)
    assert len(pairs) == len(records) and pairs["label"].notna().all()
    assert set(pairs["prediction_id"]) == {item["prediction_id"] for item in labels}
    assert (pairs["champion_version"] == 1).all()
    assert run_monitor(proj.store, name, proj.settings.monitor).performance["predictions"] == len(records)
    early = run_cycle(proj.settings, proj.store, lease_ttl_s=TTL, now=utcnow() + timedelta(minutes=30))
    assert early.status == "shadowing" and get_alias(engine, name, "champion") == 1
    later = run_cycle(proj.settings, proj.store, lease_ttl_s=TTL, now=utcnow() + timedelta(hours=2))
    assert later.status == "promoted", later.to_dict()
    assert get_alias(engine, name, "champion") == 2
    assert any(c["check"] == "shadow" and "60 labelled live rows" in c["detail"] for c in later.gate)
    _assert_consistent(engine, name)
