"""Model versions and aliases, with the full history of which version held which alias when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from loopml.enums import TaskKind
from loopml.errors import NotFoundError, did_you_mean
from loopml.registry.serialize import dumps
from loopml.store import Store, sha256_bytes, tables, utcnow

__all__ = [
    "AliasChange",
    "ModelVersion",
    "alias_at",
    "alias_history",
    "get_alias",
    "get_version",
    "list_versions",
    "move_alias",
    "read_artifact",
    "register",
    "resolve",
    "rollback",
    "set_alias",
    "version_at",
]


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a named model."""

    name: str
    version: int
    artifact_key: str
    sha256: str
    flavor: str
    metrics: dict[str, Any]
    signature: dict[str, Any]
    created_at: datetime
    run_id: int | None = None
    aliases: tuple[str, ...] = ()

    @property
    def task(self) -> TaskKind:
        """The task it was trained for (versions from before the field: binary)."""
        return TaskKind(self.signature.get("task", TaskKind.BINARY))


@dataclass(frozen=True)
class AliasChange:
    """One recorded move of an alias."""

    name: str
    alias: str
    version: int | None
    previous_version: int | None
    reason: str
    actor: str
    created_at: datetime


def register(
    store: Store,
    name: str,
    pipeline: Any,
    *,
    metrics: dict[str, Any],
    signature: dict[str, Any],
    run_id: int | None = None,
) -> ModelVersion:
    """Save ``pipeline`` as the next version of ``name`` and record it with its SHA-256."""
    data = dumps(pipeline)
    digest = sha256_bytes(data)
    key = f"models/{name}/{digest}.skops"  # content-addressed: concurrent registrations never collide
    store.artifacts.put_bytes(key, data)
    with store.engine.begin() as conn:
        version = _next_version(conn, name)
        row = {
            "name": name,
            "version": version,
            "run_id": run_id,
            "artifact_key": key,
            "sha256": digest,
            "flavor": "skops",
            "metrics": metrics,
            "signature": signature,
            "created_at": utcnow(),
        }
        conn.execute(insert(tables.model_versions), row)
    return get_version(store.engine, name, version)


def _next_version(conn: Connection, name: str) -> int:
    mv = tables.model_versions
    current = conn.execute(select(func.max(mv.c.version)).where(mv.c.name == name)).scalar()
    return int(current or 0) + 1


def _aliases(conn: Connection, name: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    rows = conn.execute(select(tables.model_aliases).where(tables.model_aliases.c.name == name))
    for row in rows:
        found.setdefault(row.version, []).append(row.alias)
    return found


def _aware(value: datetime) -> datetime:
    """A stored time in UTC (SQLite hands timestamps back without their zone; PostgreSQL with it)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _to_version(row: Any, aliases: dict[int, list[str]]) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=row.version,
        artifact_key=row.artifact_key,
        sha256=row.sha256,
        flavor=row.flavor,
        metrics=row.metrics,
        signature=row.signature,
        created_at=_aware(row.created_at),
        run_id=row.run_id,
        aliases=tuple(sorted(aliases.get(row.version, []))),
    )


def list_versions(engine: Engine, name: str | None = None) -> list[ModelVersion]:
    """Every version (of one model, or of all), newest first."""
    mv = tables.model_versions
    query = select(mv).order_by(mv.c.name, mv.c.version.desc())
    if name is not None:
        query = query.where(mv.c.name == name)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        aliases = {n: _aliases(conn, n) for n in {r.name for r in rows}}
    return [_to_version(r, aliases[r.name]) for r in rows]


def get_version(engine: Engine, name: str, version: int) -> ModelVersion:
    """One version; a missing one is a :class:`NotFoundError` listing what exists."""
    mv = tables.model_versions
    with engine.connect() as conn:
        row = conn.execute(select(mv).where(mv.c.name == name, mv.c.version == version)).first()
        if row is None:
            _raise_missing(conn, name, f"version {version}")
        return _to_version(row, _aliases(conn, name))


def _raise_missing(conn: Connection, name: str, what: str) -> None:
    mv = tables.model_versions
    names = set(conn.execute(select(mv.c.name).distinct()).scalars())
    if name not in names:
        hint = did_you_mean(name, names) if names else "no model is registered yet; run `loopml train`."
        raise NotFoundError(f"model '{name}' does not exist; {hint}")
    versions = sorted(conn.execute(select(mv.c.version).where(mv.c.name == name)).scalars())
    raise NotFoundError(f"model '{name}' has no {what}; versions: {', '.join(map(str, versions))}.")


def get_alias(engine: Engine, name: str, alias: str) -> int | None:
    """The version ``alias`` points at, or None."""
    ma = tables.model_aliases
    with engine.connect() as conn:
        value = conn.execute(select(ma.c.version).where(ma.c.name == name, ma.c.alias == alias)).scalar()
    return int(value) if value is not None else None


def resolve(engine: Engine, name: str, ref: str | int) -> ModelVersion:
    """A version by number (``3``, ``"3"``) or by alias (``"champion"``)."""
    if isinstance(ref, int) or str(ref).isdigit():
        return get_version(engine, name, int(ref))
    version = get_alias(engine, name, str(ref))
    if version is None:
        with engine.connect() as conn:
            _raise_missing(conn, name, f"alias '{ref}'")
    return get_version(engine, name, int(version))  # type: ignore[arg-type]


def set_alias(
    engine: Engine, name: str, alias: str, version: int, *, reason: str, actor: str = "loopml"
) -> AliasChange:
    """Point ``alias`` at ``version`` and record the move, in one transaction."""
    get_version(engine, name, version)
    with engine.begin() as conn:
        return move_alias(conn, name, alias, version, reason=reason, actor=actor)


def move_alias(
    conn: Connection, name: str, alias: str, version: int, *, reason: str, actor: str = "loopml"
) -> AliasChange:
    """:func:`set_alias` inside the caller's transaction, so that other writes commit with the move
    (the retraining cycle records its ``promoted`` event in the same transaction)."""
    ma, now = tables.model_aliases, utcnow()
    previous = conn.execute(
        select(ma.c.version).where(ma.c.name == name, ma.c.alias == alias).with_for_update()
    ).scalar()
    if previous is None:
        conn.execute(insert(ma), {"name": name, "alias": alias, "version": version, "updated_at": now})
    else:
        conn.execute(
            update(ma).where(ma.c.name == name, ma.c.alias == alias).values(version=version, updated_at=now)
        )
    change: dict[str, Any] = {
        "name": name,
        "alias": alias,
        "version": version,
        "previous_version": previous,
        "reason": reason,
        "actor": actor,
        "created_at": now,
    }
    conn.execute(insert(tables.alias_history), change)
    return AliasChange(**change)


def alias_history(engine: Engine, name: str, alias: str | None = None) -> list[AliasChange]:
    """Every recorded alias move for ``name``, oldest first."""
    ah = tables.alias_history
    query = select(ah).where(ah.c.name == name).order_by(ah.c.created_at, ah.c.id)
    if alias is not None:
        query = query.where(ah.c.alias == alias)
    with engine.connect() as conn:
        return [
            AliasChange(
                r.name, r.alias, r.version, r.previous_version, r.reason, r.actor, _aware(r.created_at)
            )
            for r in conn.execute(query)
        ]


def alias_at(engine: Engine, name: str, alias: str, when: datetime) -> int | None:
    """The version ``alias`` pointed at, at time ``when`` (None before its first assignment)."""
    ah = tables.alias_history
    stamp = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    query = (
        select(ah.c.version)
        .where(ah.c.name == name, ah.c.alias == alias, ah.c.created_at <= stamp)
        .order_by(ah.c.created_at.desc(), ah.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        value = conn.execute(query).scalar()
    return int(value) if value is not None else None


def version_at(engine: Engine, name: str, alias: str, t: datetime) -> int | None:
    """Which version served through ``alias`` at time ``t``: the answer an audit asks for.

    The same as :func:`alias_at` (the alias history is the record of what served when).

    Examples
    --------
    >>> import tempfile
    >>> from loopml.store import open_store
    >>> folder = tempfile.mkdtemp()
    >>> store = open_store(f"sqlite:///{folder}/loopml.db", f"{folder}/artifacts")
    >>> version_at(store.engine, "fraud", "champion", datetime(2026, 5, 1, tzinfo=UTC)) is None  # none yet
    True
    """
    return alias_at(engine, name, alias, t)


def rollback(
    engine: Engine, name: str, alias: str = "champion", *, reason: str, actor: str = "loopml"
) -> AliasChange:
    """Point ``alias`` back at the version it held before its latest move."""
    moves = alias_history(engine, name, alias)
    if not moves or moves[-1].previous_version is None:
        raise NotFoundError(
            f"alias '{alias}' of model '{name}' has no earlier version to roll back to.",
            hint="Use `loopml models promote VERSION` to choose one explicitly.",
        )
    return set_alias(engine, name, alias, moves[-1].previous_version, reason=reason, actor=actor)


def read_artifact(store: Store, version: ModelVersion) -> Any:
    """The version's fitted pipeline: its artifact checked against the recorded SHA-256, then loaded
    with the safe loader (:func:`~loopml.registry.serialize.loads`)."""
    from loopml.registry.serialize import loads

    return loads(store.artifacts.get_bytes(version.artifact_key, sha256=version.sha256))
