"""Scale-out that stays correct: 1 API replica with the embedded window state against 3 replicas
sharing the Redis one, on the fraud example (real ``loopml serve`` processes, real HTTP).

1. The project: the fraud example, 24 simulated days, trained on days 0-17 (20 trees); days 18-23
   are replayed. Store: ``--db-url`` (PostgreSQL, as replicas need) or a SQLite file.
2. ``--events`` replayed events, one record per request, one request at a time (concurrency 1),
   each with ``?features=true``; labels posted as feedback every 100 events. First 1 replica with the
   embedded state, then (the log and the state emptied) 3 replicas on ``--redis-url``, round-robin.
   ``mismatches``: events whose served window features differ, bit for bit, between the two runs,
   plus those where the 3 replicas differ from the offline point-in-time features. ``p50_ms`` and
   ``p99_ms``: request latency on Redis; ``p50_ms_embedded``: on the embedded state. The same
   sequence through 1 replica on Redis is timed too (printed): the backend's cost apart from the
   replica count (3 processes and Redis on the same cores). With ``--db-url`` each run works in a
   new database on that server, dropped at the end.
3. Memory: the 3 replicas go on with ``--memory-events`` more events (the replay repeated, each pass
   6 days later, with new ids), 100 records per request, round-robin; ``rss_growth`` is the largest
   replica RSS at the end over the largest after the first 10,000 of them. The state is in Redis and
   each entity keeps only its horizon, so a replica's memory does not grow with the event count.

Prints the figures, then ``mismatches=<n> p50_ms=<a> p99_ms=<b> p50_ms_embedded=<c> rss_growth=<r>``.
Usage: ``python benchmarks/replicas.py [--events 10000] [--memory-events 1000000]
[--redis-url redis://127.0.0.1:6379/13] [--db-url postgresql://...]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml

NAME = "fraud"
PREDICT = f"/v1/models/{NAME}/predict"
LABEL_EVERY = 100
MEMORY_BATCH = 100
MEMORY_FIRST = 10_000


def build_project(directory: Path, db_url: str | None) -> Any:
    from loopml.examples import write_example
    from loopml.project import Project

    write_example("fraud", directory, days=24, regime_change_day=19)
    path = directory / "loopml.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["store"] = {"db_url": db_url or f"sqlite:///{directory / 'loopml.db'}"}
    config.pop("actions", None)
    config.setdefault("train", {}).update(params={"n_estimators": 20, "n_jobs": 1}, bootstrap=0, report=False)
    config.setdefault("contract", {})["event_time_ahead"] = None  # the memory pass runs into the future
    for window in config["features"]["windows"]:
        if window.get("label_delay"):
            window["label_delay"] = "1d"  # labels sent during the replay reach later events' windows
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    project = Project.open(directory, environ={})
    project.ingest()
    assert project.train().promoted
    return project


def replay(project: Any) -> pd.DataFrame:
    frame = pd.read_parquet(project.directory / "data" / "replay.parquet")
    return frame.sort_values(["tx_datetime", "transaction_id"]).reset_index(drop=True)


def records(project: Any, frame: pd.DataFrame) -> list[dict[str, Any]]:
    from loopml.examples._demo import jsonable_records

    columns = project.models.get().signature["input_columns"]
    return jsonable_records(frame, list(dict.fromkeys(["transaction_id", *columns])))


def offline(project: Any, frame: pd.DataFrame) -> np.ndarray:
    from loopml.features import window_features
    from loopml.validate import load_snapshot

    model = project.models.load(history=False)
    _, snapshot = load_snapshot(project.store, project.name)
    both = pd.concat([snapshot, frame], ignore_index=True)
    found = window_features(both, model.windows, "tx_datetime", "transaction_id")
    return found.iloc[len(snapshot) :][model.window_names].to_numpy()


def reset(project: Any, redis_url: str) -> None:
    import redis

    from loopml.store import tables

    with project.store.engine.begin() as conn:
        for table in (tables.feedback, tables.action_deliveries, tables.action_outbox, tables.predictions):
            conn.execute(table.delete())
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"loopml:online:{NAME}:*", count=10_000):
        client.delete(key)
    client.close()


class Replicas:
    """``count`` ``loopml serve`` processes of one project (with ``env`` added), ready."""

    def __init__(self, project: Any, count: int, env: dict[str, str], logs: Path) -> None:
        from loopml.serve import free_port

        keep = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
        self.ports = [free_port() for _ in range(count)]
        self.processes = []
        for i, port in enumerate(self.ports):
            args = ["serve", "--project", str(project.directory), "--port", str(port)]
            with (logs / f"api-{len(env)}-{i}.log").open("ab") as out:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "loopml", *args],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env={**keep, **env},
                    )
                )
        for url, process in zip(self.urls, self.processes, strict=True):
            self._ready(url, process)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @staticmethod
    def _ready(url: str, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"a replica exited (code {process.returncode}); see its log")
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit("a replica did not become ready")

    def rss_mb(self) -> float:
        """The largest resident memory of the replicas (``VmRSS``, Linux), in MB."""
        sizes = []
        for process in self.processes:
            status = Path(f"/proc/{process.pid}/status").read_text(encoding="utf-8")
            line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
            sizes.append(int(line.split()[1]) / 1024)
        return max(sizes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(60)


def send(
    urls: list[str], recs: list[dict[str, Any]], labels: list[int], names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """One record per request, round-robin, labels every :data:`LABEL_EVERY`: (features, ms)."""
    features = np.full((len(recs), len(names)), np.nan)
    millis = np.zeros(len(recs))
    pending: list[dict[str, Any]] = []
    with httpx.Client(timeout=60) as client:
        for i, record in enumerate(recs):
            url = urls[i % len(urls)]
            started = time.perf_counter()
            response = client.post(f"{url}{PREDICT}?features=true", json=[record])
            millis[i] = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            prediction = response.json()["predictions"][0]
            window = prediction["window_features"]
            features[i] = [np.nan if window[n] is None else window[n] for n in names]
            pending.append({"prediction_id": prediction["prediction_id"], "label": labels[i]})
            if len(pending) >= LABEL_EVERY or i == len(recs) - 1:
                client.post(f"{urls[(i + 1) % len(urls)]}/v1/feedback", json=pending).raise_for_status()
                pending = []
    return features, millis


def script_stats(redis_url: str) -> tuple[int, int]:
    """Redis's own count of script calls and the microseconds it spent in them (``INFO commandstats``)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    stats = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    client.close()
    return int(stats["calls"]), int(stats["usec"])


def differ(a: np.ndarray, b: np.ndarray) -> int:
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return int((~same).any(axis=1).sum())


def later_passes(project: Any, frame: pd.DataFrame, total: int) -> Iterator[list[dict[str, Any]]]:
    """``total`` events in requests of :data:`MEMORY_BATCH`: the replay again and again, each pass 6
    days later than the one before, with ids of its own."""
    span = frame["tx_datetime"].max() - frame["tx_datetime"].min() + pd.Timedelta(hours=1)
    first_id = int(frame["transaction_id"].max()) + 1
    sent, cycle = 0, 1
    while sent < total:
        shifted = frame.head(total - sent).assign(
            tx_datetime=frame["tx_datetime"] + cycle * span,
            transaction_id=frame["transaction_id"] + cycle * first_id,
        )
        recs = records(project, shifted)
        for start in range(0, len(recs), MEMORY_BATCH):
            yield recs[start : start + MEMORY_BATCH]
        sent, cycle = sent + len(recs), cycle + 1


def memory(project: Any, frame: pd.DataFrame, replicas: Replicas, total: int) -> tuple[float, float]:
    """The replicas' largest RSS after the first :data:`MEMORY_FIRST` events and after ``total``."""
    first = last = 0.0
    sent, urls = 0, replicas.urls
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for i, batch in enumerate(later_passes(project, frame, total)):
            client.post(f"{urls[i % len(urls)]}{PREDICT}", json=batch).raise_for_status()
            sent += len(batch)
            if not first and sent >= min(MEMORY_FIRST, total):
                first = replicas.rss_mb()
            if sent % 100_000 < MEMORY_BATCH:
                rate = sent / (time.perf_counter() - started)
                print(f"  {sent:,} events, replica RSS {replicas.rss_mb():.0f} MB, {rate:.0f} events/s")
    last = replicas.rss_mb()
    return first, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="events replayed one per request")
    parser.add_argument("--memory-events", type=int, default=1_000_000, help="events of the memory pass")
    parser.add_argument(
        "--redis-url", default=os.environ.get("LOOPML_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    )
    parser.add_argument("--db-url", default=os.environ.get("LOOPML_BENCH_DB_URL"))
    parser.add_argument("--keep", type=Path, help="build the project here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, fresh_database(args.db_url) as db_url:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        project = build_project(root / "proj", db_url)
        run(project, args, root)


@contextmanager
def fresh_database(db_url: str | None) -> Iterator[str | None]:
    """A new database on ``--db-url``'s PostgreSQL server for this run, dropped at the end: a run
    never meets an earlier run's models (whose artifacts went with its temporary folder) nor touches
    what the named database holds. None (a SQLite file in the run's folder) stays None."""
    if db_url is None:
        yield None
        return
    import sqlalchemy as sa

    url = sa.engine.make_url(db_url)
    if url.get_backend_name() != "postgresql":
        yield db_url
        return
    name = f"loopml_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(project: Any, args: argparse.Namespace, root: Path) -> None:
    frame = replay(project)
    if args.events > len(frame):
        raise SystemExit(f"--events is at most {len(frame)} (the replayed days)")
    events = frame.head(args.events)
    names = project.models.load(history=False).window_names
    recs, labels = records(project, events), events["tx_fraud"].tolist()
    truth = offline(project, events)
    reset(project, args.redis_url)
    alone = Replicas(project, 1, {}, root)
    try:
        single, ms_single = send(alone.urls, recs, labels, names)
    finally:
        alone.stop()
    reset(project, args.redis_url)
    one_redis = Replicas(project, 1, {"LOOPML_ONLINE_URL": args.redis_url}, root)
    try:  # the backend's own cost: 1 replica on Redis, the same sequence
        _, ms_one_redis = send(one_redis.urls, recs, labels, names)
    finally:
        one_redis.stop()
    reset(project, args.redis_url)
    shared = Replicas(project, 3, {"LOOPML_ONLINE_URL": args.redis_url}, root)
    try:
        calls, usec = script_stats(args.redis_url)
        three, ms_three = send(shared.urls, recs, labels, names)
        calls_after, usec_after = script_stats(args.redis_url)
        calls, usec = calls_after - calls, usec_after - usec
        first, last = memory(project, frame, shared, args.memory_events)
    finally:
        shared.stop()
    reset(project, args.redis_url)
    wrong = differ(three, single) + differ(three, truth)
    print(f"events: {args.events:,} one per request; embedded vs offline differ: {differ(single, truth)}")
    print(f"3 replicas on Redis vs 1 embedded: {differ(three, single)}; vs offline: {differ(three, truth)}")
    print(
        f"replica RSS: {first:.0f} MB after {min(MEMORY_FIRST, args.memory_events):,} events, "
        f"{last:.0f} MB after {args.memory_events:,}"
    )
    print(f"Redis's own time per script call during the replay: {usec / max(calls, 1) / 1000:.3f} ms")
    p50, p99 = (float(np.percentile(ms_three, q)) for q in (50, 99))
    p50_single = float(np.percentile(ms_single, 50))
    print(
        f"p50 at concurrency 1: 1 replica embedded {p50_single:.2f} ms, 1 replica on Redis "
        f"{float(np.percentile(ms_one_redis, 50)):.2f} ms, 3 replicas on Redis {p50:.2f} ms"
    )
    print(
        f"mismatches={wrong} p50_ms={p50:.2f} p99_ms={p99:.2f} p50_ms_embedded={p50_single:.2f} "
        f"rss_growth={last / first:.3f}"
    )


if __name__ == "__main__":
    main()
