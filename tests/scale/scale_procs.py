"""Real ``loopml`` processes for the scale tests: API replicas and workers as subprocesses.

A module with a unique name (imported by the tests of this folder), so several test files start
their processes the same way: the current interpreter, the project's own configuration only (no
``LOOPML_*`` variable of the shell leaks in, except the test ones), output to a log file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx

from loopml.serve import free_port

Process = subprocess.Popen[bytes]


def start(args: list[str], log: Path, env: Mapping[str, str] | None = None) -> Process:
    """``python -m loopml ARGS`` with stdout and stderr appended to ``log``; ``env`` adds variables."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_") or k.startswith("LOOPML_TEST")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "loopml", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**keep, **(env or {})},
        )


def start_api(directory: Path, log: Path, env: Mapping[str, str] | None = None) -> tuple[Process, str]:
    """``loopml serve`` for the project in ``directory`` on a free port; the process and its URL."""
    port = free_port()
    process = start(["serve", "--project", str(directory), "--port", str(port)], log, env)
    return process, f"http://127.0.0.1:{port}"


def wait_ready(process: Process, url: str, log: Path, seconds: float = 180) -> None:
    """Wait until ``url``'s ``/health/ready`` answers 200 (fails with the log if the process exits)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited: {log.read_text()[-2000:]}"
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server did not become ready: {log.read_text()[-2000:]}")


def stop(processes: Iterable[Process], seconds: float = 30) -> None:
    """SIGTERM every process, then wait for each (SIGKILL one that outlives ``seconds``)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(seconds)
