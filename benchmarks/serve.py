"""Real-time serving: loopml's HTTP API against the in-process limit and `mlflow models serve`.

In one run, on one LightGBM model trained on the simulated fraud data:

1. in process: ``LoadedModel.predict_records`` on one record at a time (the limit);
2. loopml over HTTP: ``loopml serve`` in its own process, prediction logging on, one record per
   request, at concurrency 1 and 16 (requests/s, p50, p99);
3. MLflow: an equivalent LightGBM (same features, same data, same parameters) saved with
   ``mlflow.lightgbm`` and served by ``mlflow models serve`` (in its own virtual environment,
   ``benchmarks/.venv-mlflow``, created on first use; never one of loopml's dependencies), same load.

The load generator is wrk (C, event loop; ``apt-get install -y wrk``), on 127.0.0.1 only. MLflow
gets the already-computed feature row (it has no window features of its own), which only helps it.
It prints where a request's time goes (each stage's median in process, and what the server adds)
and the p99. The last line is ``rps_ratio_vs_mlflow_c16=<x> p50_ms_c1=<y> p99_ms_c1=<z>``.

Usage: ``.venv/bin/python benchmarks/serve.py [--days 60] [--duration 10] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from loopml.examples import write_example
from loopml.features.events import Events, event_millis
from loopml.project import Project
from loopml.serve import ServerProcess, free_port

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".venv-mlflow"
BODIES = 2000


def _wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit("error: this benchmark needs wrk: apt-get install -y wrk (Debian/Ubuntu)")
    return path


def _project(directory: Path, days: int) -> Project:
    write_example("fraud", directory, days=days)
    project = Project.open(directory, environ={})
    project.ingest()
    project.train()
    return project


def _records(project: Project, n: int) -> list[dict[str, Any]]:
    """The last ``n`` rows of the data, as a client would send them (new ids, real cards and times)."""
    frame = pd.read_parquet(project.settings.project_dir / "data" / "transactions.parquet").tail(n)
    model = project.models.load()
    rows = frame[["transaction_id", *model.input_columns]].to_dict("records")
    for i, row in enumerate(rows):
        row["transaction_id"] = 900_000_000 + i
        row["tx_datetime"] = pd.Timestamp(row["tx_datetime"]).to_pydatetime() + pd.Timedelta(days=1)
    return rows


def stages(project: Project, records: list[dict[str, Any]], work: Path) -> dict[str, float]:
    """Median milliseconds of each stage of a /v1 request's path, in process, one record at a time:
    parsing the body, the contract check, the window features (the record added to the state, its
    entities' windows read), building the row and scoring it with the compiled booster, the
    prediction log's journal and queue, and the response's JSON. What the HTTP p50 adds on top is
    the server (uvicorn, FastAPI's routing, the socket)."""
    import orjson

    from loopml.serve.state import Serving
    from loopml.store import PredictionLogWriter, create_store_engine, migrate, utcnow

    model = project.models.load()
    serving = Serving(model)
    online, compiled = model.online, model.compiled
    assert online is not None and compiled is not None
    engine = create_store_engine(f"sqlite:///{work / 'stages.db'}")
    migrate(engine)
    writer = PredictionLogWriter(engine, journal_dir=work / "stages-journal")
    bodies = [orjson.dumps({**r, "tx_datetime": r["tx_datetime"].isoformat()}) for r in records]
    times: dict[str, list[float]] = {k: [] for k in ("parse", "validate", "windows", "score", "log", "json")}
    clock = time.perf_counter
    for i, body in enumerate(bodies * 2):
        t0 = clock()
        record = orjson.loads(body)
        t1 = clock()
        checked, violations = serving.checker.check([record])
        assert not violations, violations
        t2 = clock()
        row = checked.rows[0]
        when = event_millis([row[online.event_time]])
        events = Events.from_rows(when, [row], online.specs, online.id_column)
        windows = online.features(events, observe=True)
        t3 = clock()
        score = model._score_matrix(compiled.row_matrix([row], windows))[0]  # the compiled booster itself
        output = model.outputs(np.array([score]))[0]
        t4 = clock()
        answer = {"prediction_id": str(i), **output}
        logged = {"id": f"s-{i}", "model_name": model.name, "model_version": model.version.version}
        writer.submit([logged | {"created_at": utcnow(), "origin": "api", "inputs": checked.logged[0],
                                 "score": float(score), "output": answer}])  # fmt: skip
        t5 = clock()
        orjson.dumps({"model_version": model.version.version, "predictions": [answer]})
        t6 = clock()
        if i >= len(bodies):  # the second pass: warm
            for key, a, b in (("parse", t0, t1), ("validate", t1, t2), ("windows", t2, t3),
                              ("score", t3, t4), ("log", t4, t5), ("json", t5, t6)):  # fmt: skip
                times[key].append(b - a)
    writer.close()
    engine.dispose()
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def in_process(project: Project, records: list[dict[str, Any]]) -> dict[str, float]:
    model = project.models.load()
    for rec in records[:50]:
        model.predict_records([rec], observe=False)
    times = []
    for rec in records:
        started = time.perf_counter()
        model.predict_records([rec])
        times.append(time.perf_counter() - started)
    return {"rps": 1 / statistics.fmean(times), "p50_ms": 1e3 * statistics.median(times)}


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def _lua(path: str, bodies: list[bytes], work: Path) -> Path:
    script = work / f"wrk-{abs(hash(path))}.lua"
    quoted = ",\n".join("[==[" + b.decode() + "]==]" for b in bodies)
    script.write_text(
        f"""
local bodies = {{
{quoted}
}}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "{path}", {{["Content-Type"] = "application/json"}}, bodies[i])
end
""",
        encoding="utf-8",
    )
    return script


def load(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        [_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    failed = int(errors.group(1)) if errors else 0
    socket_errors = re.search(r"Socket errors:.*", out)
    if failed or socket_errors:
        print(f"  warning: {failed} non-2xx responses; {socket_errors.group(0) if socket_errors else ''}")
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "failed": failed}


def loopml_http(project: Project, records: list[dict[str, Any]], work: Path, seconds: int) -> dict[int, Any]:
    bodies = [json.dumps({**r, "tx_datetime": r["tx_datetime"].isoformat()}).encode() for r in records]
    script = _lua("/v1/models/fraud/predict", bodies, work)
    results = {}
    with ServerProcess(str(project.settings.project_dir)) as server:
        check = httpx.post(f"{server.url}/v1/models/fraud/predict", content=bodies[0]).json()
        assert "predictions" in check, check
        load(server.url, script, 1, 2)  # warm up
        for connections in (1, 16):
            results[connections] = load(server.url, script, connections, seconds)
    return results


def _mlflow_python() -> Path:
    python = MLFLOW_VENV / "bin" / "python"
    if not (MLFLOW_VENV / "bin" / "mlflow").exists():
        print(f"creating {MLFLOW_VENV} (mlflow + lightgbm; first run only) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "mlflow", "lightgbm"], check=True)
    return python


_MLFLOW_TRAIN = """
import json, sys, lightgbm, mlflow.lightgbm, pandas as pd
work = sys.argv[1]
X = pd.read_parquet(work + "/X.parquet"); y = pd.read_parquet(work + "/y.parquet")["y"]
params = json.load(open(work + "/params.json"))
model = lightgbm.LGBMClassifier(**params).fit(X, y)
mlflow.lightgbm.save_model(model, work + "/mlflow-model", input_example=X.head(2))
"""


def mlflow_http(project: Project, records: list[dict[str, Any]], work: Path, seconds: int) -> dict[int, Any]:
    python = _mlflow_python()
    model = project.models.load()
    _, frame = _snapshot(project)
    features = model.features(model.coerce(frame))
    assert model.compiled is not None
    names = [f"f{i}" for i in range(len(model.compiled.columns))]
    X = pd.DataFrame(model.compiled.frame_matrix(features), columns=names)
    X.to_parquet(work / "X.parquet")
    pd.DataFrame({"y": frame[project.settings.target].to_numpy()}).to_parquet(work / "y.parquet")
    params = {k: v for k, v in model.pipeline[-1].get_params().items() if _plain(v)}
    (work / "params.json").write_text(json.dumps(params), encoding="utf-8")
    subprocess.run([str(python), "-c", _MLFLOW_TRAIN, str(work)], check=True)
    rows = _feature_rows(model, records)
    bodies = [json.dumps({"dataframe_split": {"columns": names, "data": [row]}}).encode() for row in rows]
    script = _lua("/invocations", bodies, work)
    port = free_port()
    mlflow = MLFLOW_VENV / "bin" / "mlflow"
    command = [str(mlflow), "models", "serve", "-m", str(work / "mlflow-model"), "-h", "127.0.0.1"]
    command += ["-p", str(port), "--env-manager", "local"]
    env = {**os.environ, "PATH": f"{MLFLOW_VENV / 'bin'}:{os.environ['PATH']}"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/ping", server)
        check = httpx.post(
            f"{url}/invocations", content=bodies[0], headers={"content-type": "application/json"}
        )
        assert check.status_code == 200, check.text
        load(url, script, 1, 2)
        return {c: load(url, script, c, seconds) for c in (1, 16)}
    finally:
        server.terminate()
        server.wait(30)


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None))


def _snapshot(project: Project) -> tuple[Any, pd.DataFrame]:
    from loopml.validate import load_snapshot

    return load_snapshot(project.store, project.name)


def _feature_rows(model: Any, records: list[dict[str, Any]]) -> list[list[float]]:
    frame = model.coerce(pd.DataFrame.from_records(records))
    matrix = model.compiled.frame_matrix(model.features(frame))
    return [[None if np.isnan(v) else float(v) for v in row] for row in matrix]


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=60, help="days of simulated transactions (default 60)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run (default 10)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the generated project here")
    args = parser.parse_args()
    _wrk()
    work = Path(args.keep or tempfile.mkdtemp(prefix="loopml-bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"training the fraud example ({args.days} days) in {work} ...", flush=True)
    project = _project(work / "project", args.days)
    records = _records(project, BODIES)
    limit = in_process(project, records)
    print(
        f"in process (LoadedModel.predict_records, 1 record): {limit['rps']:.0f}/s, "
        f"p50 {limit['p50_ms']:.3f} ms"
    )
    parts = stages(project, _records(project, BODIES), work)
    ours = loopml_http(project, records, work, args.duration)
    theirs = mlflow_http(project, records, work, args.duration)
    print(f"{'server':<8} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6}")
    for label, results in (("loopml", ours), ("mlflow", theirs)):
        for c, r in results.items():
            print(
                f"{label:<8} {c:>4} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['failed']:>6}"
            )
    print(f"HTTP p50 at c1 / in-process p50: {ours[1]['p50_ms'] / limit['p50_ms']:.2f}x")
    http = ours[1]["p50_ms"]
    print(f"where a request's p50 ({http:.3f} ms at concurrency 1) goes, stage medians in process:")
    for key, ms in [*parts.items(), ("server (HTTP, routing; the rest)", http - sum(parts.values()))]:
        print(f"  {key:<34} {ms:>7.3f} ms  {100 * ms / http:>5.1f}%")
    print(f"p99 at concurrency 1: {ours[1]['p99_ms']:.2f} ms ({ours[1]['p99_ms'] / http:.1f}x the p50)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"rps_ratio_vs_mlflow_c16={ours[16]['rps'] / theirs[16]['rps']:.2f} "
        f"p50_ms_c1={ours[1]['p50_ms']:.3f} p99_ms_c1={ours[1]['p99_ms']:.3f}"
    )


if __name__ == "__main__":
    main()
