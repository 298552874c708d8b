"""Prediction ids made in bulk are real, unique, time-ordered (version 7) UUIDs."""

from __future__ import annotations

import time
import uuid

from loopml.batch.score import new_ids


def test_bulk_ids_are_unique_version_7_uuids() -> None:
    ids = new_ids(20_000)
    assert len(set(ids)) == len(ids) == 20_000
    for text in ids[:2000]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert new_ids(0) == [] and not set(new_ids(100)) & set(ids)
    millis = int(ids[0].replace("-", "")[:12], 16)  # the first 48 bits: Unix milliseconds
    assert abs(millis / 1000 - time.time()) < 60
    time.sleep(0.002)
    assert max(ids) < min(new_ids(10))  # a later batch sorts after an earlier one
