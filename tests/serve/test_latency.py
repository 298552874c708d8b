"""The server process's latency tuning (``loopml.serve.latency``), in a child process of its own: it
changes process-wide state (the frozen generation, the GIL switch interval) that this one keeps."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import gc, sys, weakref
    from loopml.serve.latency import SWITCH_INTERVAL_S, refreeze_after_swap, settle_for_latency

    refreeze_after_swap()  # before settling: a no-op
    assert gc.get_freeze_count() == 0 and sys.getswitchinterval() == 0.005

    class Model:  # a served model: kept alive, with a reference cycle inside
        def __init__(self):
            self.me = self

    old = Model()
    gone = weakref.ref(old)
    settle_for_latency()
    frozen = gc.get_freeze_count()
    assert frozen > 0 and sys.getswitchinterval() == SWITCH_INTERVAL_S

    new = Model()  # a promotion: the old model's cycle is garbage, the new one is kept
    del old
    gc.collect()
    assert gone() is not None  # frozen: no collection walks it
    refreeze_after_swap()
    assert gone() is None and gc.get_freeze_count() > 0 and new.me is new
    print("ok", frozen)
    """
)


def test_settling_freezes_the_loaded_objects_and_a_swap_frees_the_old_model() -> None:
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")
