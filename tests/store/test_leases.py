"""Leases: one holder at a time, renewal, release, and takeover once a holder stops renewing."""

from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import Engine

from loopml.errors import BusyError
from loopml.store import create_store_engine
from loopml.store.leases import acquire, holder, lease, release


@pytest.fixture
def engine(store_url: str) -> Engine:
    engine = create_store_engine(store_url)
    yield engine
    engine.dispose()


def test_one_holder_at_a_time_and_release_hands_it_on(engine: Engine) -> None:
    assert acquire(engine, "job", "a", ttl_s=30)
    assert acquire(engine, "job", "a", ttl_s=30)  # the holder renews
    assert not acquire(engine, "job", "b", ttl_s=30)
    assert holder(engine, "job") == "a"
    release(engine, "job", "b")  # not b's to give up
    assert holder(engine, "job") == "a"
    release(engine, "job", "a")
    assert holder(engine, "job") is None
    assert acquire(engine, "job", "b", ttl_s=30)
    assert acquire(engine, "other-job", "a", ttl_s=30)  # leases are per name


def test_an_expired_lease_passes_on(engine: Engine) -> None:
    assert acquire(engine, "job", "a", ttl_s=0.2)
    assert not acquire(engine, "job", "b", ttl_s=30)
    time.sleep(0.3)
    assert holder(engine, "job") is None
    assert acquire(engine, "job", "b", ttl_s=30)
    assert not acquire(engine, "job", "a", ttl_s=30)


def test_the_context_manager_renews_and_refuses_a_second_holder(engine: Engine) -> None:
    with lease(engine, "job", ttl_s=0.3, owner="a"):
        time.sleep(0.5)  # longer than the ttl: renewed meanwhile
        assert holder(engine, "job") == "a"
        with pytest.raises(BusyError, match="'job' is held by a"), lease(engine, "job", ttl_s=0.3):
            pass
    assert holder(engine, "job") is None


def test_a_killed_holder_loses_its_lease_after_the_ttl(engine: Engine, store_url: str) -> None:
    engine.dispose()  # no connections shared with the child
    child = os.fork()
    if child == 0:  # the holder: takes the lease, then dies without releasing it
        worker = create_store_engine(store_url)
        with lease(worker, "job", ttl_s=0.5, owner="dead"):
            os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(child, 0)
    assert holder(engine, "job") == "dead"
    assert not acquire(engine, "job", "alive", ttl_s=30)
    time.sleep(0.6)
    assert acquire(engine, "job", "alive", ttl_s=30)
