"""``GET /payments/{payment_id}``'s answer, for the OpenAPI document."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from aggregator.oauth.payment_initiation import PAYMENT_STATUSES


class InstructedAmountSchema(Schema):
    class Meta:
        unknown = RAISE

    currency = fields.String(required=True, metadata={"description": "ISO 4217, e.g. GBP."})
    amount = fields.String(required=True, metadata={"description": "A decimal string, e.g. \"1.50\"."})


class PaymentSchema(Schema):
    """A payment made to the app, as the app asked it and as the bank says it stands."""

    class Meta:
        unknown = RAISE

    id = fields.String(required=True, metadata={"description": "The payment_id of the token response."})
    status = fields.String(required=True, validate=validate.OneOf(PAYMENT_STATUSES))
    instructedAmount = fields.Nested(InstructedAmountSchema, required=True)  # noqa: N815 - RFC 9396 name
    creditorName = fields.String(required=True)  # noqa: N815 - RFC 9396 name
    institution = fields.String(required=True, metadata={"description": "Who paid: the institution "
                                                                        "the person chose."})
    created_at = fields.Integer(required=True, metadata={"description": "Seconds since the epoch."})
    updated_at = fields.Integer(required=True, metadata={"description": "When the status last changed."})
