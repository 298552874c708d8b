"""The ``rabbitmq`` action against the real RabbitMQ in ``LOOPML_TEST_RABBITMQ_URL``."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from loopml.actions.base import Delivery, DeliveryError
from loopml.actions.rabbitmq import RabbitMQAction

pika = pytest.importorskip("pika")


@pytest.fixture
def broker() -> Iterator[dict[str, Any]]:
    url = os.environ.get("LOOPML_TEST_RABBITMQ_URL")
    if not url:
        pytest.skip("LOOPML_TEST_RABBITMQ_URL is not set; RabbitMQ action tests skipped")
    tag = uuid.uuid4().hex
    connection = pika.BlockingConnection(pika.URLParameters(url))
    names = {"url": url, "queue": f"loopml-test-{tag}", "exchange": f"loopml-test-{tag}"}
    yield {**names, "channel": connection.channel()}
    cleanup = connection.channel()
    cleanup.queue_delete(names["queue"])
    cleanup.exchange_delete(names["exchange"])
    connection.close()


def _delivery(key: str, **payload: Any) -> Delivery:
    return Delivery(key, "cases", "open-case", payload, datetime(2026, 11, 27, 6, 30, tzinfo=UTC), attempt=2)


def test_persistent_confirmed_message_through_a_topic_exchange(broker: dict[str, Any]) -> None:
    options = {
        "url": broker["url"],
        "exchange": broker["exchange"],
        "exchange_type": "topic",
        "routing_key": "cases.open",
        "queue": broker["queue"],
    }
    action = RabbitMQAction("cases", options)
    action.send(_delivery("k-1", card_id="c-1", score=0.9))
    action.close()
    method, props, body = broker["channel"].basic_get(broker["queue"], auto_ack=True)
    assert method.routing_key == "cases.open" and method.exchange == broker["exchange"]
    assert json.loads(body) == {"card_id": "c-1", "score": 0.9}
    assert (props.message_id, props.delivery_mode, props.content_type, props.type) == (
        "k-1",
        2,
        "application/json",
        "open-case",
    )
    assert props.timestamp == int(datetime(2026, 11, 27, 6, 30, tzinfo=UTC).timestamp())
    assert props.headers == {"loopml-endpoint": "cases", "loopml-rule": "open-case", "loopml-attempt": 2}
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="PRECONDITION_FAILED"):
        broker["channel"].queue_declare(broker["queue"], durable=False)  # it was declared durable


def test_a_built_in_amq_exchange_is_used_without_declaring_it(broker: dict[str, Any]) -> None:
    options = {
        "url": broker["url"],
        "exchange": "amq.topic",
        "exchange_type": "topic",
        "routing_key": f"{broker['queue']}.open",
        "queue": broker["queue"],
    }
    action = RabbitMQAction("cases", options)
    action.send(_delivery("k-1", a=1))
    action.close()
    method, props, _ = broker["channel"].basic_get(broker["queue"], auto_ack=True)
    assert method.exchange == "amq.topic" and props.message_id == "k-1"


def test_unroutable_message_is_a_retryable_failure(broker: dict[str, Any]) -> None:
    options = {"url": broker["url"], "exchange": broker["exchange"], "routing_key": "nobody.listens"}
    action = RabbitMQAction("cases", options)
    with pytest.raises(DeliveryError, match="no queue is bound") as info:
        action.send(_delivery("k-1", a=1))
    action.close()
    assert not info.value.permanent


def test_exchange_declared_with_another_type_fails_permanently(broker: dict[str, Any]) -> None:
    broker["channel"].exchange_declare(broker["exchange"], "fanout", durable=True)
    options = {
        "url": broker["url"],
        "exchange": broker["exchange"],
        "exchange_type": "topic",
        "queue": broker["queue"],
    }
    action = RabbitMQAction("cases", options)
    with pytest.raises(DeliveryError, match="PRECONDITION_FAILED") as info:
        action.send(_delivery("k-1", a=1))
    action.close()
    assert info.value.permanent


def test_a_dropped_connection_is_reopened_on_the_next_send(broker: dict[str, Any]) -> None:
    action = RabbitMQAction("cases", {"url": broker["url"], "queue": broker["queue"]})
    action.send(_delivery("k-1", n=1))
    action._connection.close()  # as when the broker drops an idle connection
    action.send(_delivery("k-2", n=2))
    action.close()
    ids = [broker["channel"].basic_get(broker["queue"], auto_ack=True)[1].message_id for _ in range(2)]
    assert ids == ["k-1", "k-2"]
