"""The outbound HTTP client plugins reach their upstreams with: ``context.http``.

One policy for every plugin instead of one per plugin:

- every request gets the configured timeout (``AGGREGATOR_UPSTREAM_TIMEOUT``) unless the caller
  passes its own;
- redirects are not followed unless asked (``allow_redirects=True``): an upstream API answers
  where it is asked, and a redirect must not carry a token or a client assertion elsewhere;
- a response body larger than ``max_body`` bytes is refused, so a broken or hostile upstream
  cannot fill a worker's memory;
- transport failures (refused connections, timeouts, broken chunked bodies, undecodable
  content) become :class:`UpstreamUnavailable`, whose description names the upstream's host
  only: never the URL's query, a token, or what the upstream sent;
- no cookies are kept: the client is shared by every person's requests.

Status codes are left to the caller: a 4xx or 5xx is an answer, not a transport failure.

This class is the one place where later rules on outbound requests belong (an overall
deadline per request, addresses a production server must not reach such as loopback and
private networks): plugins that use it get them without a change.
"""

from __future__ import annotations

import logging
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from aggregator.upstream.contract import UpstreamUnavailable

log = logging.getLogger("aggregator.upstream.http")

#: the largest response body accepted (discovery documents, key sets, bank lists are far smaller)
MAX_BODY = 4 * 1024 * 1024
#: connections kept per upstream host: the core calls plugins from a thread pool
POOL_SIZE = 32
_CHUNK = 64 * 1024


class UpstreamHTTP(requests.Session):
    """A ``requests.Session`` with the plugins' outbound policy (see the module docstring).

    Use it as any session: ``context.http.get(url, headers=...)``, ``.post(url, data=...)``.
    Pass ``stream=True`` to read a large body yourself (the size cap is then yours to keep).
    """

    def __init__(self, timeout: float, *, max_body: int = MAX_BODY) -> None:
        super().__init__()
        self.timeout = timeout
        self.max_body = max_body
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # accepts none
        self.headers["User-Agent"] = "aggregator-upstream/1"
        adapter = HTTPAdapter(pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """One exchange under the policy; transport failures raise :class:`UpstreamUnavailable`."""
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        stream = kwargs.pop("stream", False)
        host = _host(url)
        try:
            response = super().request(method, url, stream=True, **kwargs)
            if not stream:
                self._read(response, host)
        except requests.Timeout:
            raise UpstreamUnavailable(
                f"The upstream at {host} did not answer within {self.timeout:g} seconds."
            ) from None
        except requests.RequestException as exc:
            # ``from None``: requests' messages quote the URL, query string included
            log.warning("upstream unreachable", extra={"host": host, "error": type(exc).__name__})
            raise UpstreamUnavailable(f"The upstream at {host} cannot be reached right now.") from None
        return response

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
            raise self._too_large(host)
        body = bytearray()
        for chunk in response.iter_content(_CHUNK):
            body += chunk
            if len(body) > self.max_body:
                response.close()
                raise self._too_large(host)
        # what requests itself does when it reads a body that was not streamed
        response._content = bytes(body)  # noqa: SLF001

    def _too_large(self, host: str) -> UpstreamUnavailable:
        return UpstreamUnavailable(
            f"The upstream at {host} sent a response larger than {self.max_body} bytes."
        )


def _host(url: str | bytes) -> str:
    """The host part only: a URL's user info, path and query may hold secrets."""
    text = url.decode("utf-8", "replace") if isinstance(url, bytes) else str(url)
    try:
        return urlsplit(text).hostname or "an unknown host"
    except ValueError:
        return "an unknown host"
