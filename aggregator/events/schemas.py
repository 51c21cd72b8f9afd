"""What the stream endpoints read and answer (SSF 1.0 §8, RFC 8936 §2.4), for validation and
for the OpenAPI document. Members a receiver echoes back that only the transmitter sets
(``iss``, ``aud``, ``events_supported`` ...) are ignored; members we read are validated."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from aggregator.events.types import DELIVERY_METHODS

_ID = validate.Length(min=1, max=100)


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class DeliverySchema(_Lenient):
    method = fields.String(required=True, validate=validate.OneOf(DELIVERY_METHODS))
    #: push: the receiver's endpoint; poll: set by the transmitter (ignored when sent)
    endpoint_url = fields.String(validate=validate.Length(min=1, max=2000))


class StreamRequestSchema(_Lenient):
    """Create (POST), replace (PUT) or update (PATCH) a stream (SSF 1.0 §8.1.1)."""

    stream_id = fields.String(validate=_ID)
    delivery = fields.Nested(DeliverySchema)
    events_requested = fields.List(fields.String(validate=validate.Length(min=1, max=300)),
                                   validate=validate.Length(max=50))
    description = fields.String(validate=validate.Length(max=300))


class StreamSchema(Schema):
    """A stream's configuration as the transmitter answers it (SSF 1.0 §8.1.1)."""

    stream_id = fields.String(required=True)
    iss = fields.String(required=True)
    aud = fields.String(required=True)
    delivery = fields.Nested(DeliverySchema, required=True)
    events_supported = fields.List(fields.String(), required=True)
    events_requested = fields.List(fields.String(), required=True)
    events_delivered = fields.List(fields.String(), required=True)
    description = fields.String()
    min_verification_interval = fields.Integer()


class StatusRequestSchema(_Lenient):
    """SSF 1.0 §8.1.2.2."""

    stream_id = fields.String(required=True, validate=_ID)
    status = fields.String(required=True, validate=validate.OneOf(("enabled", "paused", "disabled")))
    reason = fields.String(validate=validate.Length(max=300))


class StatusSchema(Schema):
    """SSF 1.0 §8.1.2.1; ``reason`` says why a failing stream was paused."""

    stream_id = fields.String(required=True)
    status = fields.String(required=True)
    reason = fields.String()


class VerificationRequestSchema(_Lenient):
    """SSF 1.0 §8.1.4.2."""

    stream_id = fields.String(required=True, validate=_ID)
    state = fields.String(validate=validate.Length(max=300))


class _SetError(_Lenient):
    err = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(validate=validate.Length(max=300))


class PollRequestSchema(_Lenient):
    """RFC 8936 §2.4."""

    maxEvents = fields.Integer(validate=validate.Range(min=0, max=100))  # noqa: N815
    returnImmediately = fields.Boolean()  # noqa: N815
    ack = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                      validate=validate.Length(max=1000))
    setErrs = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=100)),  # noqa: N815
                          values=fields.Nested(_SetError), validate=validate.Length(max=1000))


class PollResponseSchema(Schema):
    """RFC 8936 §2.5: jti -> SET, and whether more wait."""

    sets = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    moreAvailable = fields.Boolean()  # noqa: N815
