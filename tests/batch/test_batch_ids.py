"""Prediction ids made in bulk are real, unique, version-4 UUIDs."""

from __future__ import annotations

import uuid

from loopml.batch.score import new_ids


def test_bulk_ids_are_unique_version_4_uuids() -> None:
    ids = new_ids(20_000)
    assert len(set(ids)) == len(ids) == 20_000
    for text in ids[:2000]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert new_ids(0) == [] and not set(new_ids(100)) & set(ids)
