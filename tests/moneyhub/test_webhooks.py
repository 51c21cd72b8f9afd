"""Moneyhub webhooks are validated and mapped to what they change (seed 001 "Webhooks")."""

from __future__ import annotations

import pytest

from plugins.moneyhub.webhooks import WebhookRejected, effect_of, parse_webhook

SEED_EXAMPLE = {
    "id": "abe168ce-1b2f-4c38-9c92-db5730485cb3",
    "eventType": "newTransactions",
    "userId": "5c79210bbac25ecb5e71ac40",
    "payload": {
        "accounts": [
            {
                "id": "6d0baf11-248e-4c11-9c04-97b7758b4e04",
                "transactions": [
                    "d520402a-d982-43ee-b1d1-bdfd282249ea",
                    "613586bf-dac9-4996-9c03-7194a7d62297",
                ],
            }
        ]
    },
}


def test_the_documented_new_transactions_webhook():
    event = parse_webhook(SEED_EXAMPLE)
    assert (event.id, event.event_type, event.user_id) == (
        SEED_EXAMPLE["id"], "newTransactions", "5c79210bbac25ecb5e71ac40",
    )
    assert event.new_transactions == {
        "6d0baf11-248e-4c11-9c04-97b7758b4e04": (
            "d520402a-d982-43ee-b1d1-bdfd282249ea", "613586bf-dac9-4996-9c03-7194a7d62297",
        )
    }
    effect = effect_of(event)
    assert effect.user_id == event.user_id
    assert effect.forget_connections
    assert effect.summary == "2 new transaction(s) in 1 account(s)"


def test_other_events_are_accepted_and_treated_as_a_change():
    event = parse_webhook({**SEED_EXAMPLE, "eventType": "accountsUpdated", "payload": {},
                           "extra": "ignored"})
    assert event.new_transactions == {}
    assert effect_of(event).forget_connections


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "id"),
        ([], "id"),
        ({**SEED_EXAMPLE, "userId": ""}, "userId"),
        ({k: v for k, v in SEED_EXAMPLE.items() if k != "eventType"}, "eventType"),
        ({**SEED_EXAMPLE, "payload": "x"}, "payload"),
        ({**SEED_EXAMPLE, "payload": {"accounts": [{"id": "a"}]}}, "transactions"),
        ({**SEED_EXAMPLE, "payload": {"accounts": [{"id": "a", "transactions": [1]}]}},
         "transactions"),
    ],
)
def test_malformed_webhooks_are_rejected_with_the_reason(body, message):
    with pytest.raises(WebhookRejected, match=message):
        parse_webhook(body)
