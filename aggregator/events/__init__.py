"""Events to apps: this AS as an OpenID Shared Signals Framework 1.0 transmitter.

- ``types``        the event types we send, and the facts in the outbox they come from
- ``sets``         Security Event Tokens (RFC 8417): subject, payloads, signature
- ``facts``        what the rest of the code calls to emit an event (outbox facts)
- ``relay``        the delivery worker's first stage: outbox facts -> one SET per app concerned
- ``transmitter``  discovery, stream management, status, verification, poll (SSF 1.0 §7-§8,
                   RFC 8936)
- ``delivery``     the delivery worker process: relay, push (RFC 8935), retries, failing streams
- ``cli``          ``aggregator events status``

The storage side (outbox, streams, queues and their guarantees) is ``aggregator/store/events.py``.
"""
