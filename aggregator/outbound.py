"""Every request the AS sends on a client's or a plugin's behalf: one policy, one session.

A client's ``jwks_uri`` and a plugin's discovery and token endpoints are URLs that someone
other than the operator chose, so fetching them must not turn the AS into a proxy into its own
network (SSRF) nor let one slow server hold the AS's threads. :class:`OutboundSession` applies:

- an overall **deadline** per request: connect, headers and the whole body; before every read
  the socket's timeout is set to what is left of it, so a server dripping one byte at a time
  is cut off at the deadline, not after its drip;
- a **size cap** on the body, as declared and as received;
- **no redirects** unless the caller asks (and then every hop meets the same rules);
- in production, **https only** and no loopback, private, link-local, CGNAT, unspecified,
  multicast or cloud metadata addresses, unless the operator allows the host
  (``AGGREGATOR_OUTBOUND_ALLOWED_HOSTS``). The address is checked when the connection is
  made, on the very address connected to after DNS resolution, so a name that resolved to a
  public address at registration and to 127.0.0.1 later (DNS rebinding) is still refused;
- no cookies and no proxies or credentials from the environment.

Failures are :class:`OutboundError` whose text names the host only: never the URL's path or
query, the upstream's status or anything it sent.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

if TYPE_CHECKING:
    from config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: the largest response body accepted (discovery documents, key sets, bank lists are far smaller)
MAX_BODY = 4 * 1024 * 1024
#: connections kept per host: the core calls plugins from a thread pool
POOL_SIZE = 32
_CHUNK = 64 * 1024

#: addresses a production AS never connects to on someone else's behalf, by reason
FORBIDDEN_NETWORKS: dict[str, tuple[IPNetwork, ...]] = {
    "cloud metadata": (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"),
                       ipaddress.ip_network("100.100.100.200/32")),
    "unspecified": (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128")),
    "loopback": (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    "private": (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("172.16.0.0/12"),
                ipaddress.ip_network("192.168.0.0/16"),  # RFC 1918
                ipaddress.ip_network("fc00::/7")),  # RFC 4193 (fd00:ec2::254 is AWS's metadata)
    "CGNAT": (ipaddress.ip_network("100.64.0.0/10"),),  # RFC 6598
    "link-local": (ipaddress.ip_network("169.254.0.0/16"),  # 169.254.169.254: cloud metadata
                   ipaddress.ip_network("fe80::/10")),
    "multicast": (ipaddress.ip_network("224.0.0.0/4"), ipaddress.ip_network("ff00::/8")),
}

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052


class OutboundError(Exception):
    """A request could not be made or completed; the text names the host only.

    ``reason`` reads after the host: "The upstream at {host} {reason}."
    """

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host} {reason}")
        self.host = host
        self.reason = reason


class OutboundRefused(OutboundError):
    """The policy forbids this destination (scheme or address)."""


class OutboundTimeout(OutboundError):
    """The deadline passed before the whole response arrived."""


class OutboundTooLarge(OutboundError):
    """The response body is larger than the cap."""


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (None when it is one)."""
    if isinstance(address, ipaddress.IPv6Address):
        # an IPv4 address carried in IPv6 is judged as itself: ::ffff:127.0.0.1 is 127.0.0.1
        embedded = address.ipv4_mapped or address.sixtofour or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None)
        if embedded is not None:
            return forbidden_reason(embedded)
    for reason, networks in FORBIDDEN_NETWORKS.items():
        if any(address in network for network in networks):
            return reason
    if not address.is_global:  # the rest of IANA's special-purpose registries (RFC 6890)
        return "special-purpose"
    return None


@dataclass(frozen=True)
class AllowedHosts:
    """Hosts the operator allows despite their address: names (exact) and networks (CIDR)."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, items: Iterable[str]) -> AllowedHosts:
        """``["bank.internal", "10.20.0.0/16"]``; raise ``ValueError`` naming a bad item."""
        names, networks = set(), []
        for item in items:
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                name = item.strip().lower().rstrip(".")
                if not _is_hostname(name):
                    raise ValueError(f"{item!r} is neither a hostname nor an IP network.") from None
                names.add(name)
        return cls(frozenset(names), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return host.lower().rstrip(".") in self.names or any(address in net for net in self.networks)


def _is_hostname(name: str) -> bool:
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(
        0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-"
        and all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in label)
        for label in labels
    )


@dataclass(frozen=True)
class OutboundPolicy:
    """Where the AS may send requests: anywhere (development, tests) or public https (production)."""

    production: bool = False
    allowed: AllowedHosts = AllowedHosts()

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        """Production mode and ``AGGREGATOR_OUTBOUND_ALLOWED_HOSTS``."""
        return cls(settings.production, AllowedHosts.parse(settings.outbound_allowed_hosts))

    def check_scheme(self, url: str) -> None:
        parts = urlsplit(url)
        schemes = ("https",) if self.production else ("http", "https")
        if parts.scheme not in schemes:
            raise OutboundRefused(host_of(url), "is refused: only https URLs are fetched in production")

    def check_address(self, host: str, address: IPAddress) -> None:
        """Refuse a production connection to a non-public address the operator did not allow."""
        if not self.production or self.allowed.allows(host, address):
            return
        reason = forbidden_reason(address)
        if reason is not None:
            raise OutboundRefused(host, f"is refused: its address is {reason}")

    def check_url(self, url: str) -> None:
        """Refuse ``url`` now if its scheme, or an address its host resolves to, is refused.

        A courtesy for registration (a clear error early); the check that holds is the one at
        connect time, since DNS may answer differently later.
        """
        self.check_scheme(url)
        host = urlsplit(url).hostname or ""
        try:
            addresses = resolve(host, urlsplit(url).port or 443)
        except OSError:
            return  # not resolvable now; it will be checked when connected
        for address in addresses:
            self.check_address(host, address)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def host_of(url: str | bytes) -> str:
    """The host part only: a URL's user info, path and query may hold secrets."""
    text = url.decode("utf-8", "replace") if isinstance(url, bytes) else str(url)
    try:
        return urlsplit(text).hostname or "an unknown host"
    except ValueError:
        return "an unknown host"


# ---------------------------------------------------------------- the deadline of this thread's request

_current = threading.local()


def _deadline() -> float | None:
    return getattr(_current, "deadline", None)


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each with the socket timeout set to what is left before ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: float | None) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open while we read
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if self._deadline is not None:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the response deadline passed")
            self._sock.settimeout(remaining)
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, reading status line, headers and body within the deadline."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp.close()
        self.fp = io.BufferedReader(_DeadlineReader(sock, _deadline()))


class _Checked:
    """Connects only to addresses the policy allows: resolve, check every address, then
    connect to the checked address itself and check the peer once more."""

    policy: OutboundPolicy
    response_class = _DeadlineResponse
    host: str
    port: int
    _dns_host: str

    def _new_conn(self) -> socket.socket:
        try:
            addresses = resolve(self._dns_host, self.port)
        except OSError:
            # never let urllib3 resolve again unchecked
            raise OutboundError(self.host, "cannot be reached right now") from None
        for address in addresses:
            self.policy.check_address(self.host, address)
        name = self._dns_host
        self._dns_host = str(addresses[0])  # connect to the address just checked, not a new lookup
        try:
            sock = super()._new_conn()  # type: ignore[misc]
        finally:
            self._dns_host = name
        try:
            peer = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
            self.policy.check_address(self.host, peer)
        except BaseException:
            sock.close()
            raise
        return sock


def _adapter(policy: OutboundPolicy) -> HTTPAdapter:
    """An adapter whose pools build :class:`_Checked` connections under ``policy``."""
    plain = type("CheckedHTTPConnection", (_Checked, HTTPConnection), {"policy": policy})
    tls = type("CheckedHTTPSConnection", (_Checked, HTTPSConnection), {"policy": policy})
    pools = {
        "http": type("CheckedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
        "https": type("CheckedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
    }
    adapter = HTTPAdapter(pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE, max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = pools
    return adapter


class OutboundSession(requests.Session):
    """A ``requests.Session`` under an :class:`OutboundPolicy` (see the module docstring).

    ``deadline`` is the seconds one request may take from connect to the last body byte; a
    caller's ``timeout=`` replaces it for that request. With ``stream=True`` the caller reads
    the body (still within the deadline) and keeps the size cap itself.
    """

    def __init__(self, policy: OutboundPolicy, deadline: float, *, max_body: int = MAX_BODY) -> None:
        super().__init__()
        self.policy = policy
        self.timeout = deadline
        self.max_body = max_body
        self.trust_env = False  # no proxy or .netrc from the environment: the address is ours to check
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # accepts none
        self.headers["User-Agent"] = "aggregator-outbound/1"
        adapter = _adapter(policy)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """One exchange under the policy; every failure is an :class:`OutboundError`."""
        budget = kwargs.pop("timeout", None) or self.timeout
        if isinstance(budget, tuple):  # (connect, read) from requests' API: the sum bounds it all
            budget = sum(part for part in budget if part)
        kwargs.setdefault("allow_redirects", False)
        stream = kwargs.pop("stream", False)
        host = host_of(url)
        previous = _deadline()
        _current.deadline = deadline = time.monotonic() + budget
        try:
            response = super().request(method, url, stream=True, timeout=budget, **kwargs)
            if not stream:
                self._read(response, host)
            return response
        except OutboundError:
            raise
        except (requests.RequestException, OSError, http.client.HTTPException) as exc:
            # ``from None``: requests' messages quote the URL, query string included
            # (a timeout while reading the body reaches us as a ConnectionError)
            if isinstance(exc, requests.Timeout | TimeoutError) or time.monotonic() >= deadline:
                raise OutboundTimeout(host, f"did not answer within {budget:g} seconds") from None
            raise OutboundError(host, "cannot be reached right now") from None
        finally:
            _current.deadline = previous

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        # every hop, redirects included, meets the scheme rule; addresses are checked on connect
        self.policy.check_scheme(request.url or "")
        return super().send(request, **kwargs)

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        # requests.Session.get would default to following redirects
        kwargs.setdefault("allow_redirects", False)
        return self.request("GET", url, **kwargs)

    def options(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("allow_redirects", False)
        return self.request("OPTIONS", url, **kwargs)

    def _read(self, response: requests.Response, host: str) -> None:
        """Read the body, refusing it past ``max_body`` bytes (as declared, then as received)."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            response.close()
            raise OutboundTooLarge(host, f"sent a response larger than {self.max_body} bytes")
        body = bytearray()
        for chunk in response.iter_content(_CHUNK):
            body += chunk
            if len(body) > self.max_body:
                response.close()
                raise OutboundTooLarge(host, f"sent a response larger than {self.max_body} bytes")
        # what requests itself does when it reads a body that was not streamed
        response._content = bytes(body)  # noqa: SLF001
