"""Marshmallow schemas for the people's forms: the rules live here, once."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

USERNAME_RULE = validate.Regexp(
    r"^[A-Za-z0-9._-]{3,64}$",
    error="Use 3 to 64 letters, digits, dots, underscores or hyphens.",
)


class SignupForm(Schema):
    """NIST SP 800-63B §5.1.1.2: a length floor and no composition rules."""

    class Meta:
        unknown = EXCLUDE

    username = fields.String(required=True, validate=USERNAME_RULE,
                             error_messages={"required": "Choose a username."})
    password = fields.String(
        required=True,
        validate=validate.Length(min=12, max=1024,
                                 error="Use at least 12 characters (at most 1024)."),
        error_messages={"required": "Choose a password."},
    )


class LoginForm(Schema):
    class Meta:
        unknown = EXCLUDE

    username = fields.String(required=True, validate=validate.Length(min=1, max=64),
                             error_messages={"required": "Enter your username."})
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024),
                             error_messages={"required": "Enter your password."})
