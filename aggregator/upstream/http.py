"""The outbound HTTP client plugins reach their upstreams with: ``context.http``.

It is :class:`aggregator.outbound.OutboundSession` (an overall deadline per request of
``AGGREGATOR_UPSTREAM_TIMEOUT`` seconds unless the caller passes its own ``timeout``, a size
cap, no redirects unless asked, no cookies, and in production https only and no private,
loopback or metadata addresses unless ``AGGREGATOR_OUTBOUND_ALLOWED_HOSTS`` allows them), with
its failures in the plugin contract's terms: :class:`UpstreamUnavailable`, whose description
names the upstream's host only, never the URL's query, a token, or what the upstream sent.

Status codes are left to the caller: a 4xx or 5xx is an answer, not a transport failure.
"""

from __future__ import annotations

import logging
from typing import Any

import requests

from aggregator.outbound import MAX_BODY, OutboundError, OutboundPolicy, OutboundSession
from aggregator.upstream.contract import UpstreamUnavailable

log = logging.getLogger("aggregator.upstream.http")


class UpstreamHTTP(OutboundSession):
    """An :class:`OutboundSession` raising :class:`UpstreamUnavailable`.

    Use it as any session: ``context.http.get(url, headers=...)``, ``.post(url, data=...)``.
    """

    def __init__(self, timeout: float, *, max_body: int = MAX_BODY,
                 policy: OutboundPolicy | None = None) -> None:
        super().__init__(policy or OutboundPolicy(), timeout, max_body=max_body)

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """One exchange under the policy; every failure raises :class:`UpstreamUnavailable`."""
        try:
            return super().request(method, url, **kwargs)
        except OutboundError as exc:
            log.warning("upstream unreachable", extra={"host": exc.host, "error": type(exc).__name__})
            raise UpstreamUnavailable(f"The upstream at {exc.host} {exc.reason}.") from None
