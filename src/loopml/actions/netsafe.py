"""Outbound safety for actions that call URLs: an allowlist, refused address ranges, DNS pinning.

A target host must match ``actions.allowed_hosts`` (a name, ``*.example.com``, an IP, a CIDR, or
``*`` for any name: the address checks below still apply).
Then, at send time, the name is resolved and every address checked: loopback needs
``allow_loopback``; private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) need
``allow_private`` or an IP/CIDR entry covering them; link-local (169.254/16, fe80::/10) and cloud
metadata addresses need an IP/CIDR entry covering them (metadata: that exact address); unspecified,
multicast and reserved addresses are always refused. The caller then connects to the address that
was checked, so a second DNS answer (rebinding) cannot swap it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from loopml.errors import ConfigError

__all__ = ["METADATA_ADDRESSES", "NetworkPolicy", "Refused"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)


class Refused(Exception):
    """A target refused by the outbound policy (never retried: the configuration must change)."""


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def _plain(address: IPAddress) -> IPAddress:
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


@dataclass(frozen=True)
class NetworkPolicy:
    """Where outbound requests may go (see the module docstring)."""

    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    allow_loopback: bool = False
    networks: tuple[IPNetwork, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        nets = tuple(n for n in (_network(e) for e in self.allowed_hosts) if n is not None)
        object.__setattr__(self, "networks", nets)

    @classmethod
    def from_options(cls, hosts: Iterable[str], allow_private: bool, allow_loopback: bool) -> NetworkPolicy:
        return cls(tuple(str(h).strip().lower() for h in hosts), bool(allow_private), bool(allow_loopback))

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` (a name or an IP literal) matches an allowlist entry."""
        host = host.lower().rstrip(".")
        literal = _network(host)
        for entry in self.allowed_hosts:
            if entry in (host, "*"):
                return True
            if entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        return literal is not None and any(literal.network_address in n for n in self.networks)

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be connected to, or None when it may."""
        ip = _plain(address)
        covered = [n for n in self.networks if ip in n]
        if ip in METADATA_ADDRESSES:
            exact = any(n.num_addresses == 1 for n in covered)
            return None if exact else f"{ip} is a cloud metadata address"
        if ip.is_loopback:
            return None if self.allow_loopback else f"{ip} is a loopback address (set allow_loopback: true)"
        if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
            return f"{ip} is not a unicast address"
        if ip.is_link_local:
            return None if covered else f"{ip} is link-local (list it in allowed_hosts to allow it)"
        if ip.is_private or not ip.is_global:
            if self.allow_private or covered:
                return None
            return f"{ip} is a private address (set allow_private: true or list it in allowed_hosts)"
        return None

    def check_host(self, host: str, where: str) -> None:
        """Raise a :class:`ConfigError` unless ``host`` is on the allowlist (and, as an IP, permitted)."""
        if not self.host_allowed(host):
            listed = ", ".join(self.allowed_hosts) or "nothing"
            raise ConfigError(
                f"{where}: host '{host}' is not in actions.allowed_hosts (allowed: {listed}).",
                hint=f"Add '{host}' to actions.allowed_hosts in loopml.yaml if it is trusted.",
            )
        literal = _network(host)
        if literal is not None and literal.num_addresses == 1:
            reason = self.refusal(literal.network_address)
            if reason:
                raise ConfigError(f"{where}: {reason}.")

    def resolve(self, host: str, port: int) -> str:
        """Resolve ``host`` now and return the one address to connect to; :class:`Refused` if any is refused.

        Every address of the answer must pass, so that a name with one public and one internal
        address cannot reach the internal one. ``OSError`` (no answer) is left to the caller.
        """
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))
        for address in addresses:
            reason = self.refusal(address)
            if reason:
                raise Refused(f"host '{host}' resolves to {reason}")
        return str(addresses[0])
