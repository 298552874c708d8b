"""Model versions and aliases, with the full history of which version held which alias when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from loopml.enums import TaskKind
from loopml.errors import ArtifactIntegrityError, NotFoundError, PromotionRefusedError, closest, did_you_mean
from loopml.registry.serialize import dumps
from loopml.store import Store, sha256_bytes, tables, utcnow

__all__ = [
    "AliasChange",
    "ModelVersion",
    "alias_at",
    "alias_history",
    "check_promotable",
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


# The aliases the loop itself moves (a misspelt alias is matched against these and the model's own).
STANDARD_ALIASES = ("champion", "challenger")


def _raise_missing(conn: Connection, name: str, what: str, alias: str | None = None) -> None:
    mv = tables.model_versions
    names = set(conn.execute(select(mv.c.name).distinct()).scalars())
    if name not in names:
        hint = did_you_mean(name, names) if names else "no model is registered yet; run `loopml train`."
        raise NotFoundError(f"model '{name}' does not exist; {hint}")
    versions = sorted(conn.execute(select(mv.c.version).where(mv.c.name == name)).scalars())
    near = None
    if alias is not None:  # a misspelt alias: the closest of the model's and the loop's own
        known = {a for held in _aliases(conn, name).values() for a in held} | set(STANDARD_ALIASES)
        near = closest(alias, known - {alias})  # an unset standard alias is not a misspelling
    suggestion = f" did you mean '{near}'?" if near else ""
    raise NotFoundError(
        f"model '{name}' has no {what};{suggestion} versions: {', '.join(map(str, versions))}."
    )


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
            _raise_missing(conn, name, f"alias '{ref}'", alias=str(ref))
    return get_version(engine, name, int(version))  # type: ignore[arg-type]


def set_alias(
    store: Store, name: str, alias: str, version: int, *, reason: str, actor: str = "loopml"
) -> AliasChange:
    """Point ``alias`` at ``version`` and record the move, in one transaction, once the version's
    artifact passed its checks (:func:`check_promotable`): a :class:`PromotionRefusedError`
    otherwise, and the alias stays where it was."""
    check_promotable(store, name, version, alias)
    with store.engine.begin() as conn:
        return move_alias(conn, name, alias, version, reason=reason, actor=actor)


def check_promotable(store: Store, name: str, version: int, alias: str = "champion") -> ModelVersion:
    """The version, once its artifact matches its SHA-256 and loads with the safe loader (what any
    move of an alias checks first). A :class:`NotFoundError` for a version that does not exist; a
    :class:`PromotionRefusedError` naming the model, the version and where ``alias`` stays."""
    target = get_version(store.engine, name, version)
    try:
        read_artifact(store, target)
    except ArtifactIntegrityError as exc:
        current = get_alias(store.engine, name, alias)
        stays = f"version {current}" if current is not None else "unset"
        raise PromotionRefusedError(
            f"{exc.message.rstrip('.')}; not moving alias '{alias}' to it (it stays {stays}).",
            hint=exc.hint,
        ) from None
    return target


def move_alias(
    conn: Connection, name: str, alias: str, version: int, *, reason: str, actor: str = "loopml"
) -> AliasChange:
    """:func:`set_alias` inside the caller's transaction, so that other writes commit with the move
    (the retraining cycle records its ``promoted`` event in the same transaction). It reads no
    artifact: every caller checks the version first (:func:`check_promotable`), outside the
    transaction, so that loading a model never holds the store's write lock."""
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
    store: Store, name: str, alias: str = "champion", *, reason: str, actor: str = "loopml"
) -> AliasChange:
    """Point ``alias`` back at the version it held before its latest move (checked like any move)."""
    moves = alias_history(store.engine, name, alias)
    if not moves or moves[-1].previous_version is None:
        raise NotFoundError(
            f"alias '{alias}' of model '{name}' has no earlier version to roll back to.",
            hint="Use `loopml models promote VERSION` to choose one explicitly.",
        )
    return set_alias(store, name, alias, moves[-1].previous_version, reason=reason, actor=actor)


def read_artifact(store: Store, version: ModelVersion) -> Any:
    """The version's fitted model: its artifact checked against the recorded SHA-256, then loaded
    with the safe loader (:func:`~loopml.registry.serialize.loads`).

    Anything wrong (missing, changed, not a zip, truncated, an untrusted type, not a model) is one
    :class:`ArtifactIntegrityError` line that names the model, the version and the artifact's key
    (relative to the artifact store: never a server path)."""
    from loopml.registry.serialize import loads

    where, key = f"model '{version.name}' version {version.version}", version.artifact_key
    try:
        data = store.artifacts.get_bytes(key)
    except NotFoundError:
        raise ArtifactIntegrityError(
            f"{where}: its artifact {key} is missing from the artifact store.",
            hint="Restore the file or re-register the model.",
        ) from None
    except OSError as exc:
        raise ArtifactIntegrityError(
            f"{where}: its artifact {key} cannot be read ({type(exc).__name__})."
        ) from None
    digest = sha256_bytes(data)
    if digest != version.sha256:
        raise ArtifactIntegrityError(
            f"{where}: artifact {key} fails its SHA-256 check (expected {version.sha256[:12]}…, got "
            f"{digest[:12]}…); it was changed after it was written.",
            hint="Re-register the model or restore the original file.",
        )
    try:
        model = loads(data)
    except ArtifactIntegrityError as exc:
        raise ArtifactIntegrityError(f"{where}: {exc.message}", hint=exc.hint) from None
    if not callable(getattr(model, "predict", None)):
        raise ArtifactIntegrityError(
            f"{where}: artifact {key} holds a {type(model).__name__}, not a fitted model; refusing it.",
            hint="Re-register the model.",
        )
    return model
