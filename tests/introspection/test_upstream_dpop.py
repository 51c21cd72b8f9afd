"""An upstream that binds its tokens with DPoP: the AS holds that key, so the app gets no token.

The tokens in ``institutions`` are the banks' own, presented by the app as they are; a token
bound to a key the app does not hold would be useless to it (docs/introspection.md).
"""

from __future__ import annotations

from aggregator.introspection.response import UPSTREAM_DPOP
from tests.introspection.apps import granted
from tests.introspection.upstream import link


def test_a_dpop_bound_upstream_token_is_not_handed_out(server, person, banks):
    svc = server.services
    bearer = link(svc, person.id, banks("Bank of Astoria"))
    bound = link(svc, person.id, banks("Monami Card", token_type="DPoP"))
    grapher, token = granted(svc, person.id, {bearer.id, bound.id})

    institutions = grapher.introspect(server.url, token).json()["institutions"]

    assert institutions["Bank of Astoria"]["status"] == "ok"
    assert institutions["Bank of Astoria"]["token_type"] == "Bearer"
    assert institutions["Monami Card"] == {
        "endpoint": bound.endpoint, "provider": "fakebank", "registration_id": bound.id,
        "status": "error", "error": UPSTREAM_DPOP,
    }
