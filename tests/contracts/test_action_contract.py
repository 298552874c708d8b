"""One suite over every registered action plugin, each against a live target of its kind.

The contract (see ``loopml.actions.base``): a plugin is built from its endpoint's options and opens
nothing yet; a bad option is a one-line ConfigError naming the endpoint and the key; what it sends can
be read back from the real target unchanged; the same idempotency key sent twice (also by a second
instance, as after a worker crash) has one effect; an unreachable target is a short, retryable
DeliveryError marked ``unreachable`` (the dispatcher then holds the endpoint's other actions);
``close()`` is safe twice. Where the target itself cannot de-duplicate (RabbitMQ), the
contract is that every copy carries the key as its message id, so consumers de-duplicate on it.

Targets: Redis, RabbitMQ, NATS JetStream and PostgreSQL from ``LOOPML_TEST_*_URL`` (skipped with a
reason when unset), SQLite and log files in ``tmp_path``, and the example case receiver (a real HTTP
server) for webhooks. A plugin registered without a target here fails
``test_every_registered_action_has_a_target``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loopml import _plugins
from loopml.actions import open_action
from loopml.actions.base import Action, Delivery, DeliveryError
from loopml.config import ActionsConfig
from loopml.errors import ConfigError

Effects = list[tuple[str, dict[str, Any]]]  # (idempotency key as the target recorded it, payload)


@dataclass
class Target:
    """A live target for one plugin: options that reach it, how to read back what it received."""

    options: dict[str, Any]
    effects: Callable[[], Effects]
    unreachable: dict[str, Any]
    bad: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (options, key the error names)
    consumer_dedupes: bool = False
    project: Path = Path(".")  # the project directory the dispatcher would pass


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set; this action target is not available")
    return value


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with(options: dict[str, Any], **changes: Any) -> dict[str, Any]:
    merged = {**options, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    redis = pytest.importorskip("redis")
    url = _env("LOOPML_TEST_REDIS_URL")
    tag = uuid.uuid4().hex
    options: dict[str, Any] = {
        "url": url,
        "stream": f"loopml-test-{tag}",
        "dedupe_prefix": f"loopml-test:{tag}:",
    }
    client = redis.Redis.from_url(url)
    request.addfinalizer(
        lambda: (client.delete(options["stream"], *client.keys(f"loopml-test:{tag}:*")), client.close())
    )

    def effects() -> Effects:
        entries = client.xrange(options["stream"])
        return [(f[b"key"].decode(), json.loads(f[b"payload"])) for _, f in entries]

    bad = [
        (_with(options, stream=""), "stream"),
        (_with(options, maxlen=-1), "maxlen"),
        (_with(options, url="http://127.0.0.1:6379"), "url"),
        (_with(options, stream=None), "stream"),
    ]
    unreachable = _with(options, url=f"redis://127.0.0.1:{_closed_port()}/0")
    return Target(options, effects, unreachable, bad)


def _rabbitmq(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    pika = pytest.importorskip("pika")
    url = _env("LOOPML_TEST_RABBITMQ_URL")
    options: dict[str, Any] = {"url": url, "queue": f"loopml-test-{uuid.uuid4().hex}"}
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    request.addfinalizer(lambda: (channel.queue_delete(options["queue"]), connection.close()))

    def effects() -> Effects:
        found: Effects = []
        while True:
            method, properties, body = channel.basic_get(options["queue"], auto_ack=True)
            if method is None:
                return found
            found.append((properties.message_id, json.loads(body)))

    bad = [
        (_with(options, exchange_type="fan"), "exchange_type"),
        (_with(options, timeout_s="ten"), "timeout_s"),
        (_with(options, url=None), "url"),
        (_with(options, queue=None), "queue"),
    ]
    unreachable = _with(options, url=f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F")
    return Target(options, effects, unreachable, bad, consumer_dedupes=True)


async def _nats_messages(url: str, stream: str) -> Effects:
    import nats

    client = await nats.connect(url)
    try:
        js = client.jetstream()
        state = (await js.stream_info(stream)).state
        found: Effects = []
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            message = await js.get_msg(stream, seq)
            found.append(((message.headers or {})["Nats-Msg-Id"], json.loads(message.data or b"")))
        return found
    finally:
        await client.close()


async def _nats_delete(url: str, stream: str) -> None:
    import nats

    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(stream)
    except Exception:
        pass
    finally:
        await client.close()


def _nats(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    pytest.importorskip("nats")
    url = _env("LOOPML_TEST_NATS_URL")
    tag = uuid.uuid4().hex
    options: dict[str, Any] = {
        "url": url,
        "subject": f"loopml.test.{tag}",
        "stream": f"LOOPML_TEST_{tag}",
        "create": True,
    }
    request.addfinalizer(lambda: asyncio.run(_nats_delete(url, options["stream"])))
    bad = [
        (_with(options, subject="loopml.*"), "subject"),
        (_with(options, create="yes"), "create"),
        (_with(options, stream=None), "stream"),
        (_with(options, url=None), "url"),
    ]
    unreachable = _with(options, url=f"nats://127.0.0.1:{_closed_port()}")
    return Target(options, lambda: asyncio.run(_nats_messages(url, options["stream"])), unreachable, bad)


def _sql_target(url: str, unreachable_url: str) -> Target:
    options: dict[str, Any] = {"url": url, "table": f"cases_{uuid.uuid4().hex[:12]}", "create": True}

    def effects() -> Effects:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as conn:
                table = sa.Table(options["table"], sa.MetaData(), autoload_with=conn)
                rows = [dict(r._mapping) for r in conn.execute(sa.select(table))]
        finally:
            engine.dispose()
        return [(row.pop("loopml_key"), row) for row in rows]

    bad = [
        (_with(options, mode="merge"), "mode"),
        (_with(options, mode="upsert"), "key"),
        (_with(options, url="nosuchdb://x/y"), "url"),
        (_with(options, table=None), "table"),
        (_with(options, columns={"score": "decimal"}), "columns.score"),
    ]
    return Target(options, effects, _with(options, url=unreachable_url), bad)


def _sql_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    (tmp_path / "not-a-folder").write_text("x")
    return _sql_target(
        f"sqlite:///{tmp_path / 'crm.db'}", f"sqlite:///{tmp_path / 'not-a-folder' / 'crm.db'}"
    )


def _sql_postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    url: str = request.getfixturevalue("postgres_url")  # a fresh schema, dropped afterwards
    closed = sa.make_url(url).set(port=_closed_port()).render_as_string(hide_password=False)
    return _sql_target(url, closed)


def _log(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    path = tmp_path / "logs" / "actions.jsonl"
    (tmp_path / "not-a-folder").write_text("x")

    def effects() -> Effects:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return [(r["key"], r["payload"]) for r in map(json.loads, lines)]

    options: dict[str, Any] = {"path": "logs/actions.jsonl"}  # relative: inside the project
    bad = [(_with(options, level="loud"), "level"), (_with(options, fsync="no"), "fsync")]
    unreachable = _with(options, path=str(tmp_path / "not-a-folder" / "actions.jsonl"))
    return Target(options, effects, unreachable, bad)


def _webhook(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    from loopml.examples.fraud.receiver import CaseReceiver, new_secret

    secret = new_secret()
    receiver = CaseReceiver(secret=secret, port=0, db_path=tmp_path / "cases.db").start()
    request.addfinalizer(receiver.close)
    options: dict[str, Any] = {
        "url": receiver.url,
        "secret": secret,
        "allowed_hosts": ["127.0.0.1"],
        "allow_loopback": True,
    }

    def effects() -> Effects:
        return [(case.pop("webhook_id"), case) for case in receiver.cases()]

    bad = [(_with(options, url="ftp://127.0.0.1/cases"), "url"), (_with(options, secret=None), "secret")]
    unreachable = _with(options, url=f"http://127.0.0.1:{_closed_port()}/cases")
    return Target(options, effects, unreachable, bad)


MAKERS: dict[str, Callable[[pytest.FixtureRequest, Path], Target]] = {
    "redis": _redis,
    "rabbitmq": _rabbitmq,
    "nats": _nats,
    "sql-sqlite": _sql_sqlite,
    "sql-postgres": _sql_postgres,
    "log": _log,
    "webhook": _webhook,
}
KINDS = sorted(_plugins.available("actions"))
CASES = [
    pytest.param(kind, case, id=case, marks=[pytest.mark.postgres] if case.endswith("postgres") else [])
    for kind in KINDS
    for case in sorted(c for c in MAKERS if c.split("-")[0] == kind)
]


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    made = MAKERS[request.param](request, tmp_path)
    made.project = tmp_path
    return made


def _plugin(kind: str, target: Target, options: dict[str, Any], name: str = "contract") -> Any:
    """The plugin built as the dispatcher builds it: endpoint options from the project file, plus
    ``project_dir`` (and a webhook's network policy) added by :func:`loopml.actions.open_action`."""
    config = ActionsConfig.model_validate({"endpoints": {name: {"kind": kind, **options}}})
    return open_action(name, config, target.project)


def _delivery(key: str, payload: dict[str, Any], attempt: int = 1) -> Delivery:
    return Delivery(key, "contract", "open-case", payload, datetime(2026, 11, 27, 6, 0, tzinfo=UTC), attempt)


def _payload(i: int) -> dict[str, Any]:
    return {
        "case_id": f"case-{i}",
        "card_id": f"card-{i % 2}",
        "score": 0.5 + i / 8,
        "count": i,
        "flagged": i % 2 == 0,
        "note": None if i == 1 else f"note é {i}",
    }


def test_every_registered_action_has_a_target() -> None:
    covered = {case.split("-")[0] for case in MAKERS}
    assert set(KINDS) <= covered, f"add a target for {sorted(set(KINDS) - covered)} to this suite"


@pytest.mark.parametrize(("kind", "target"), CASES, indirect=["target"])
def test_builds_from_options_without_connecting(kind: str, target: Target) -> None:
    action = _plugin(
        kind, target, target.unreachable
    )  # nothing is listening there: construction must not care
    assert isinstance(action, Action) and action.kind == kind
    action.close()


@pytest.mark.parametrize(("kind", "target"), CASES, indirect=["target"])
def test_bad_option_is_a_one_line_config_error_naming_the_key(kind: str, target: Target) -> None:
    cases = [({**target.options, "bogus_option": 1}, "bogus_option"), *target.bad]
    for options, key in cases:
        with pytest.raises(ConfigError) as info:
            _plugin(kind, target, options, name="crm_cases")
        message = str(info.value)
        assert "\n" not in message and "crm_cases" in message and key in message, (options, message)


@pytest.mark.parametrize(("kind", "target"), CASES, indirect=["target"])
def test_round_trip_reads_back_what_was_sent(kind: str, target: Target) -> None:
    action = _plugin(kind, target, target.options)
    sent = {f"key-{uuid.uuid4().hex}": _payload(i) for i in range(3)}
    try:
        for key, payload in sent.items():
            action.send(_delivery(key, payload))
    finally:
        action.close()
    assert dict(target.effects()) == sent


@pytest.mark.parametrize(("kind", "target"), CASES, indirect=["target"])
def test_same_key_twice_has_one_effect_even_from_a_new_instance(kind: str, target: Target) -> None:
    key = f"key-{uuid.uuid4().hex}"
    first = _plugin(kind, target, target.options)
    first.send(_delivery(key, _payload(4)))
    first.send(_delivery(key, _payload(4), attempt=2))  # the same worker retries
    first.close()
    second = _plugin(kind, target, target.options)  # a worker that restarted after a crash sends it again
    second.send(_delivery(key, _payload(4), attempt=3))
    second.close()
    effects = target.effects()
    assert {k for k, _ in effects} == {key} and all(p == _payload(4) for _, p in effects)
    assert len(effects) == (3 if target.consumer_dedupes else 1)


@pytest.mark.parametrize(("kind", "target"), CASES, indirect=["target"])
def test_unreachable_target_is_a_short_retryable_delivery_error(kind: str, target: Target) -> None:
    action = _plugin(kind, target, target.unreachable)
    clock = time.perf_counter()
    with pytest.raises(DeliveryError) as info:
        action.send(_delivery(f"key-{uuid.uuid4().hex}", _payload(0)))
    action.close()
    error = info.value
    assert error.unreachable and not error.permanent and not error.gone, str(error)
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message and len(message) < 300, message
    assert time.perf_counter() - clock < 10


@pytest.mark.parametrize(("kind", "target"), CASES, indirect=["target"])
def test_close_is_safe_twice_before_and_after_sending(kind: str, target: Target) -> None:
    idle = _plugin(kind, target, target.options)
    idle.close()
    idle.close()
    used = _plugin(kind, target, target.options)
    used.send(_delivery(f"key-{uuid.uuid4().hex}", _payload(2)))
    used.close()
    used.close()
    assert len(target.effects()) == 1
