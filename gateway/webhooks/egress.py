"""Where customer-set URLs (webhooks) may lead: never into the operator's own network unless the operator says so.

A customer chooses the URLs the gateway POSTs to (``event_webhook_url``, ``status_callback``,
``two_way_webhook_url``). Pointed at ``http://169.254.169.254/`` or ``http://10.0.0.7:6379/`` they would make the
gateway call the cloud's metadata service or the operator's internal hosts. So by default only public addresses
are reachable, checked twice:

- when a URL is set: http or https, a host that is a name or a canonical IP address (``http://2130706433/`` and
  ``http://0x7f.1/`` are refused), and neither that address nor any address the name resolves to now is
  refused (``422 webhook_url_not_allowed``);
- when a webhook is sent: the resolver of the sender's connection drops refused addresses and its socket factory
  refuses to connect to one (IP literals bypass the resolver), since a name may resolve elsewhere by then.

``[webhooks] allow_private_addresses`` lifts the rule, ``allowed_networks`` lifts it for chosen networks.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import time
from typing import Any, Iterable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from gateway.errors import Unprocessable
from gateway.settings import WebhookSettings
from gateway.validation import Fields

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
CODE = "webhook_url_not_allowed"
# metadata services on addresses that look public: Azure's wire server, AWS's IPv6 instance metadata
METADATA = tuple(map(ipaddress.ip_network, ("168.63.129.16/32", "fd00:ec2::254/128")))
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LOOKUP_TIMEOUT_S = 2.0  # a name that does not resolve in time is accepted; the check at send time still holds
VERDICT_TTL_S = 60.0  # a host's verdict is reused this long (a batch of 1,000 messages with one callback)


class AddressNotAllowed(OSError):
    """A connection the policy refuses; an OSError so that aiohttp reports it as a failure to connect."""

    def __init__(self, message: str):
        super().__init__(errno.EACCES, f"{CODE}: {message}")  # strerror is what aiohttp's error shows


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), which is where it leads."""
    if ip.ipv4_mapped is not None or ip.sixtofour is not None:
        return ip.ipv4_mapped or ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None


def non_public(ip: Address) -> str | None:
    """Why an address is not public (loopback, private, ...), or None for a public one."""
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
        reason = non_public(inner)
        return f"{reason} (as {inner})" if reason else None
    if any(ip in network for network in METADATA) or ip == ipaddress.IPv4Address("169.254.169.254"):
        return "a cloud metadata address"
    for attribute, reason in (("is_unspecified", "an unspecified"), ("is_loopback", "a loopback"),
                              ("is_link_local", "a link-local"), ("is_multicast", "a multicast"),
                              ("is_private", "a private"), ("is_reserved", "a reserved")):
        if getattr(ip, attribute):
            return f"{reason} address"
    return None if ip.is_global else "not a public address"


def address(text: str) -> Address:
    """The IP address ``text`` writes (ValueError when it writes none)."""
    return ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is no part of the address


class AddressPolicy:
    """Which addresses customer-set URLs may reach (see the module's docstring)."""

    def __init__(self, allow_private: bool = False, allowed_networks: Iterable[str] = ()):
        self.allow_private = allow_private
        self.allowed = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
        self._verdicts: dict[str, tuple[float, str | None]] = {}

    @classmethod
    def of(cls, settings: WebhookSettings) -> "AddressPolicy":
        return cls(settings.allow_private_addresses, settings.allowed_networks)

    def refusal(self, ip: Address) -> str | None:
        """Why the policy refuses this address, or None when it may be reached."""
        if self.allow_private or any(ip in n for n in self.allowed):
            return None
        return non_public(ip)

    async def check(self, url: str | None, field: str) -> str | None:
        """``url`` when webhooks may be sent to it, else 422 webhook_url_not_allowed naming the field and why."""
        if url is None:
            return None
        reason = await self._host_refusal(url)
        if reason is not None:
            raise Unprocessable(f"The field '{field}' must be a public http(s) URL: {reason}.", code=CODE,
                                details={"field": field})
        return url

    async def fields(self, f: Fields, *names: str) -> dict[str, str | None]:
        """The URL fields among ``names`` that a request sets, each validated (Fields.url) and checked."""
        return {name: await self.check(f.url(name), name) for name in names if name in f.data}

    async def _host_refusal(self, url: str) -> str | None:
        try:
            parsed = URL(url)
            host = parsed.raw_host if parsed.scheme in ("http", "https") else None
        except ValueError:
            host = None
        if not host:
            return "only http and https URLs with a host are allowed"
        host = host[:-1] if host.endswith(".") else host  # "169.254.169.254." is that address to some resolvers
        try:
            return self.refusal(address(host))
        except ValueError:
            pass
        if "%" in host:  # a percent-encoded name: no resolver reads it as meant, some as an address
            return f"'{host}' is not a host name"
        try:  # a legacy numeric form (2130706433, 0x7f.1, 127.1) that resolvers read as an IPv4 address
            socket.inet_aton(host)
            return f"'{host}' is not a canonical IP address"
        except (OSError, ValueError):  # not numeric (ValueError: a NUL or a lone surrogate)
            pass
        if host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost"):
            # RFC 6761: whatever a resolver says, these names are this machine
            reason = self.refusal(ipaddress.IPv4Address("127.0.0.1"))
            return reason and f"{host} is a loopback name"
        if self.allow_private and not self.allowed:
            return None  # nothing to refuse: no need to look the name up
        now = time.monotonic()
        hit = self._verdicts.get(host)
        if hit is not None and hit[0] > now:
            return hit[1]
        reason = await self._resolved_refusal(host)
        if len(self._verdicts) >= 10_000:
            self._verdicts.clear()
        self._verdicts[host] = (now + VERDICT_TTL_S, reason)
        return reason

    async def _resolved_refusal(self, host: str) -> str | None:
        try:
            infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM), LOOKUP_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError, UnicodeError):
            return None  # not resolvable now: it may be later, and is checked again when a webhook is sent
        for info in infos:
            reason = self.refusal(address(info[4][0]))
            if reason is not None:
                return f"{host} resolves to {info[4][0]}, {reason}"
        return None

    def socket_factory(self, addr_info: Any) -> socket.socket:
        """aiohttp's socket factory: every connection the webhook sender opens passes here with its address."""
        family, type_, proto, _, peer = addr_info
        reason = self.refusal(address(peer[0]))
        if reason is not None:
            raise AddressNotAllowed(f"{peer[0]} is {reason}")
        return socket.socket(family=family, type=type_, proto=proto)

    def connector(self, limit: int, limit_per_host: int = 0) -> aiohttp.TCPConnector:
        """A connector that reaches only the addresses this policy allows, whatever names resolve to."""
        return aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host, resolver=PolicyResolver(self),
                                    socket_factory=self.socket_factory)


class PolicyResolver(AbstractResolver):
    """The default resolver with refused addresses removed; a name left with none fails to resolve."""

    def __init__(self, policy: AddressPolicy):
        self._policy = policy
        self._resolver = aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        allowed = [r for r in found if self._policy.refusal(address(r["host"])) is None]
        if not allowed:
            reasons = {f"{r['host']} is {self._policy.refusal(address(r['host']))}" for r in found}
            raise AddressNotAllowed(f"{host} resolves to {'; '.join(sorted(reasons))}")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


def refused(exc: BaseException | None) -> bool:
    """Whether a failed request was refused by the policy (as opposed to a receiver that is down)."""
    while exc is not None:
        if isinstance(exc, AddressNotAllowed):
            return True
        exc = getattr(exc, "os_error", None) or exc.__cause__
    return False


__all__ = ["AddressNotAllowed", "AddressPolicy", "CODE", "PolicyResolver", "non_public", "refused"]
