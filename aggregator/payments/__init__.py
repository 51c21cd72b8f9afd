"""Payments an app asks to be made to it (RFC 9396 ``payment_initiation``): the person's choice of
who pays, the upstream's payment authorization, and ``GET /payments/{payment_id}``."""
