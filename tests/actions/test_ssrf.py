"""Outbound safety of the webhook action: allowlist, refused address ranges, DNS checked at send time
(a real name, ``localhost``, that really resolves to loopback), pinning, and no redirects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from loopml.actions import Delivery, DeliveryError
from loopml.actions.netsafe import NetworkPolicy
from loopml.actions.webhook import WebhookAction
from loopml.errors import ConfigError

INTERNAL = [
    ("10.0.0.7", "private"),
    ("172.16.4.2", "private"),
    ("172.31.255.1", "private"),
    ("192.168.1.20", "private"),
    ("100.64.0.9", "private"),  # carrier-grade NAT
    ("[fd12:3456::1]", "private"),  # unique local IPv6
    ("169.254.10.10", "link-local"),
    ("[fe80::1]", "link-local"),
    ("169.254.169.254", "metadata"),
    ("[fd00:ec2::254]", "metadata"),
    ("100.100.100.200", "metadata"),
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("[::1]", "loopback"),
    ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped IPv6
    ("0.0.0.0", "unicast"),
]


def _action(url: str, secret: str, **options: Any) -> WebhookAction:
    return WebhookAction("hook", {"url": url, "secret": secret, "allowed_hosts": ["*"], **options})


def _delivery() -> Delivery:
    return Delivery("msg_ssrf", "hook", "rule", {"x": 1}, datetime.now(UTC))


@pytest.mark.parametrize(("host", "kind"), INTERNAL)
def test_internal_addresses_are_refused_by_default(host: str, kind: str, secret: str) -> None:
    with pytest.raises(ConfigError, match=kind) as info:
        _action(f"http://{host}:8080/hook", secret)
    assert "\n" not in str(info.value) and "actions.endpoints.hook" in str(info.value)


def test_each_range_opens_only_with_its_explicit_switch(secret: str) -> None:
    _action("http://10.0.0.7/hook", secret, allow_private=True).close()
    _action("http://127.0.0.1/hook", secret, allow_loopback=True).close()
    _action("http://10.0.0.7/hook", secret, allowed_hosts=["10.0.0.0/8"]).close()  # an explicit CIDR
    _action("http://169.254.169.254/x", secret, allowed_hosts=["169.254.169.254"]).close()  # exact IP
    with pytest.raises(ConfigError, match="metadata"):  # not by a switch for another range
        _action("http://169.254.169.254/x", secret, allow_private=True, allow_loopback=True)
    with pytest.raises(ConfigError, match="metadata"):  # nor by a wide CIDR
        _action("http://169.254.169.254/x", secret, allowed_hosts=["169.254.0.0/16"])
    with pytest.raises(ConfigError, match="loopback"):  # listing 127.0.0.1 is not allow_loopback
        _action("http://127.0.0.1/x", secret, allowed_hosts=["127.0.0.1"])


def test_hosts_must_match_the_allowlist(secret: str) -> None:
    with pytest.raises(ConfigError, match=r"not in actions\.allowed_hosts"):
        _action("https://evil.example.net/x", secret, allowed_hosts=["cases.example.com"])
    with pytest.raises(ConfigError, match=r"not in actions\.allowed_hosts"):
        _action("https://cases.example.com.evil.net/x", secret, allowed_hosts=["*.example.com"])
    with pytest.raises(ConfigError, match="allowed: nothing"):
        _action("https://cases.example.com/x", secret, allowed_hosts=[])
    _action("https://a.cases.example.com/x", secret, allowed_hosts=["*.example.com"]).close()
    with pytest.raises(ConfigError, match="http:// or https://"):
        _action("file:///etc/passwd", secret)


def test_a_name_resolving_to_loopback_is_refused_at_send_time(secret: str, receiver) -> None:
    url = receiver.url.replace("127.0.0.1", "localhost")
    action = _action(url, secret, allowed_hosts=["localhost"])  # a name: nothing to check yet
    with pytest.raises(DeliveryError, match=r"resolves to 127\.0\.0\.1 is a loopback") as info:
        action.send(_delivery())
    assert info.value.permanent
    assert receiver.outcomes()["accepted"] == 0  # never connected
    allowed = _action(url, secret, allowed_hosts=["localhost"], allow_loopback=True)
    allowed.send(_delivery())  # the same name, explicitly allowed: delivered
    assert receiver.outcomes()["accepted"] == 1


def test_redirects_are_not_followed(secret: str, receiver, tmp_path) -> None:
    from loopml.examples.fraud.receiver import CaseReceiver

    with CaseReceiver(secret=secret, db_path=tmp_path / "other.db") as other:
        receiver.fail_next(1, 307, {"Location": other.url})
        action = _action(receiver.url, secret, allow_loopback=True)
        with pytest.raises(DeliveryError, match="redirect") as info:
            action.send(_delivery())
        assert info.value.permanent
        assert other.outcomes() == {"accepted": 0, "duplicate": 0, "rejected": 0}
        receiver.fail_next(1, 302, {"Location": "http://169.254.169.254/latest/meta-data/"})
        with pytest.raises(DeliveryError, match="not followed"):
            action.send(_delivery())


def test_policy_checks_every_address_a_name_has() -> None:
    policy = NetworkPolicy.from_options(["*"], allow_private=False, allow_loopback=False)
    assert policy.host_allowed("anything.example")
    assert policy.refusal(__import__("ipaddress").ip_address("93.184.216.34")) is None
    with pytest.raises(Exception, match="loopback"):
        policy.resolve("localhost", 80)
