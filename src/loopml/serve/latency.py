"""Process tuning for a server's tail latency, applied by ``loopml serve``'s own process only
(:func:`~loopml.serve.server.run_server`), never by a library or test process that imports loopml.

Measured with ``benchmarks/serve.py`` on the fraud model (p99 at concurrency 1 went from 48 ms to
2.4 ms with the other changes of that day): a full garbage collection walking the loaded model and
its window state paused a request for 100-150 ms now and then, and the prediction log's writer
thread held the GIL for up to CPython's 5 ms switch interval at each hand-off.
"""

from __future__ import annotations

import gc
import sys

__all__ = ["SWITCH_INTERVAL_S", "refreeze_after_swap", "settle_for_latency"]

# How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms).
SWITCH_INTERVAL_S = 0.0005

_settled = False


def settle_for_latency() -> None:
    """Once the model is loaded: collect, then ``gc.freeze()`` what is alive (the model, its compiled
    scorer and window state live as long as the process, and are no longer walked by every full
    collection), and hand the GIL over every :data:`SWITCH_INTERVAL_S` seconds."""
    global _settled
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    _settled = True


def refreeze_after_swap() -> None:
    """After the served model was replaced (a promotion, a rollback): free what the old one left in
    the frozen generation and freeze the new one; a no-op where :func:`settle_for_latency` never ran.
    One full collection, once per swap."""
    if not _settled:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
