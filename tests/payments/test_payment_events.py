"""The shop hears of its payment: a signed ``payment-status-changed`` SET on its push stream
once the AS learns from the bank that the payment completed (over HTTP, the real sandbox bank)."""

from __future__ import annotations

from tests.events.conftest import push_stream, verified
from tests.oauth.apps import make_app
from tests.payments.journeys import pay, token
from tests.payments.test_payments import settled


def test_the_shop_hears_its_payment_complete(server, nat, sandbox_bank, receiver, delivery_worker):
    shop = make_app(server, client_name="Acme Coffee", scope="openid payments events",
                    grant_types=["authorization_code", "client_credentials"])
    push_stream(server, shop, receiver.url)
    delivery_worker(server)

    answer, verifier = pay(server, shop, nat, sandbox_bank)
    tokens = token(shop, answer["code"], verifier)
    [detail] = tokens["authorization_details"]
    assert detail["status"] == "pending"
    assert settled(server, tokens["access_token"], detail["payment_id"])["status"] == "completed"

    (signed,) = receiver.wait_for(1, timeout=2.0)
    _, claims = verified(server, signed)
    assert claims["aud"] == shop.client_id
    event = claims["events"][f"{server.url}/events/payment-status-changed"]
    assert (event["payment_id"], event["status"]) == (detail["payment_id"], "completed")
