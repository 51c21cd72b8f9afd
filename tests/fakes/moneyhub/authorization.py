"""Authorization requests: verifying request objects and applying Moneyhub's rules to them.

Two stages, because errors differ in where they may go (RFC 6749 §4.1.2.1): until the request
object verifies and its redirect_uri is registered, errors are answered directly; after that,
they may be sent to the redirect_uri.
"""

from __future__ import annotations

import calendar
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from .catalog import BANKS_BY_ID, CONNECTION_TYPES, banks_of_type
from .errors import InvalidRequest, InvalidRequestObject, InvalidScope, OAuthError
from .jose import ASYMMETRIC_ALGS, HMAC_ALGS, verify_client_jws
from .models import AuthorizationRequest, Journey
from .settings import RESPONSE_TYPES, FakeClient
from .state import DEFAULT_PERMISSIONS, FakeMoneyhub

#: seed 001 "Data access"
DATA_SCOPES: frozenset[str] = frozenset({
    "transactions:read:all", "transactions:read:in", "transactions:read:out",
    "transactions:write", "transactions:write:all",
    "accounts:read", "accounts_details:read", "accounts:write", "accounts:write:all",
    "categories:read", "categories:write", "spending_analysis:read",
    "spending_goals:read", "spending_goals:write", "spending_goals:write:all",
    "savings_goals:read", "savings_goals:write", "savings_goals:write:all",
})
TRANSACTION_READ_SCOPES: frozenset[str] = frozenset(
    {"transactions:read:all", "transactions:read:in", "transactions:read:out"}
)
#: seed 001 "User management" and "Payments": client_credentials without ``sub``
CLIENT_SCOPES: frozenset[str] = frozenset(
    {"user:create", "user:read", "user:delete", "payee:create", "payee:read", "payment:read"}
)
LIFECYCLE_SCOPES: frozenset[str] = frozenset({"reauth", "refresh"})
#: seed 003: the defaults plus the additional permissions
PERMISSIONS: frozenset[str] = DEFAULT_PERMISSIONS | {
    "ReadStandingOrdersBasic", "ReadStandingOrdersDetail", "ReadBeneficiariesDetail",
    "ReadStatementsBasic", "ReadStatementsDetail",
}
CONSENT_KEYS: frozenset[str] = frozenset(
    {"expirationDateTime", "transactionFromDateTime", "permissions", "permissionsAction"}
)
MAX_CONSENT_DAYS = 90
MAX_HISTORY_MONTHS = 72


def check_data_scopes(scopes: set[str]) -> None:
    """Seed 001: the transactions:read scopes are mutually exclusive, and transactions:write
    needs one of them; either mistake is ``invalid_scope``."""
    reads = scopes & TRANSACTION_READ_SCOPES
    if len(reads) > 1:
        raise InvalidScope(f"mutually exclusive scopes: {' '.join(sorted(reads))}")
    if "transactions:write" in scopes and not reads:
        raise InvalidScope("transactions:write requires a transactions:read scope")


def verify_request_object(
    fake: FakeMoneyhub, client: FakeClient, token: str, issuer: str
) -> dict[str, Any]:
    """Stage 1: the request object's claims, once signature, client, redirect_uri and
    response_type check out (RFC 9101 §6, OIDC Core §6.3)."""
    algs = ASYMMETRIC_ALGS + HMAC_ALGS
    _, claims = verify_client_jws(
        token, client, allowed_algs=algs, required_alg=client.request_object_signing_alg,
        error=InvalidRequestObject,
    )
    if claims.get("client_id") != client.client_id:
        raise InvalidRequestObject("client_id in the request object does not match the client")
    if "iss" in claims and claims["iss"] != client.client_id:
        raise InvalidRequestObject("iss must be the client_id")
    if "aud" in claims:
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if issuer not in audiences:
            raise InvalidRequestObject("aud must be the issuer")
    now = fake.now()
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, int | float) or exp <= now):
        raise InvalidRequestObject("the request object has expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + 5):
        raise InvalidRequestObject("the request object is not valid yet")
    if "request" in claims or "request_uri" in claims:
        # RFC 9101 §4: a request object must not nest another one
        raise InvalidRequestObject("request and request_uri are not allowed inside a request")

    redirect_uri = claims.get("redirect_uri")
    if redirect_uri not in client.redirect_uris:
        # OIDC Core §3.1.2.1: exact match against a registered URI
        raise InvalidRequest("redirect_uri is missing or not registered for this client")
    response_type = claims.get("response_type")
    if response_type not in RESPONSE_TYPES or response_type not in client.response_types:
        raise OAuthError(
            f"response_type {response_type!r} is not allowed", error="unsupported_response_type"
        )
    mode = claims.get("response_mode") or ("query" if response_type == "code" else "fragment")
    if mode not in ("query", "fragment", "form_post"):
        raise InvalidRequest(f"unsupported response_mode {mode!r}")
    if mode == "query" and "id_token" in response_type:
        # OAuth 2.0 Multiple Response Type Encoding Practices §5: never tokens in the query
        raise InvalidRequest("response_mode query is not allowed with an id_token response")
    claims["response_mode"] = mode
    return claims


def validate_authorization_request(
    fake: FakeMoneyhub, client: FakeClient, params: dict[str, Any]
) -> AuthorizationRequest:
    """Stage 2: Moneyhub's rules for scopes and claims (seed 001, seed 003)."""
    response_type: str = params["response_type"]
    state = _optional_string(params, "state")
    nonce = _optional_string(params, "nonce")
    if "id_token" in response_type and not nonce:
        # OIDC Core §3.3.2.11: nonce is REQUIRED when an id_token comes from the front channel
        raise InvalidRequest("nonce is required for response types that return an id_token")

    scope = params.get("scope")
    if not isinstance(scope, str):
        raise InvalidRequest("scope is required")
    scopes = scope.split()
    if "openid" not in scopes:
        raise InvalidScope("the openid scope is required")
    claims = _claims(params.get("claims"))
    id_token_claims = claims.get("id_token") or {}
    user_id = _claim_value(id_token_claims, "sub")
    paying = "payment" in scopes
    if paying and user_id is None:
        user_id = ""  # seed 001's payment example names no user: the fake makes one at /auth
    elif not isinstance(user_id, str) or fake.user(user_id, client.client_id) is None:
        raise InvalidRequest("claims.id_token.sub.value must be a user created by this client")

    lifecycle = LIFECYCLE_SCOPES.intersection(scopes)
    journey: Journey
    connection_id: str | None = None
    bank_scope: str | None = None
    payment: dict[str, Any] | None = None
    if paying:
        journey = "payment"
        bank_scope = _bank_scope(client, scopes)
        if set(scopes) != {"openid", "payment", bank_scope}:
            raise InvalidScope("only openid and one id:<bank> may accompany payment")
        if "code" not in response_type:
            raise InvalidRequest("a payment completes at the code exchange: response_type "
                                 "must include code")
        payment = validate_payment(fake, client, id_token_claims.get("mh:payment"))
    elif lifecycle:
        journey = "reauth" if "reauth" in lifecycle else "refresh"
        if set(scopes) != {"openid", journey}:
            raise InvalidScope(f"only openid may accompany {journey}")
        connection_id = _claim_value(id_token_claims, "mh:con_id")
        connection = fake.connection(connection_id) if isinstance(connection_id, str) else None
        if connection is None or connection.user_id != user_id:
            raise InvalidRequest("claims.id_token.mh:con_id.value must be a connection of sub")
    else:
        journey = "connect"
        bank_scope = _bank_scope(client, scopes)
        con_id = id_token_claims.get("mh:con_id")
        if not isinstance(con_id, dict) or con_id.get("essential") is not True:
            raise InvalidRequest("claims.id_token.mh:con_id must be requested as essential")
        others = set(scopes) - {"openid", "offline_access", bank_scope}
        unknown = others - DATA_SCOPES
        if unknown:
            raise InvalidScope(f"unsupported scope(s): {' '.join(sorted(unknown))}")
        check_data_scopes(others)

    consent = _claim_value(id_token_claims, "mh:consent")
    permissions, expires_at, transaction_from = validate_consent(fake, consent)
    cat_type = _claim_value(id_token_claims, "mh:cat_type")
    if cat_type is not None and cat_type not in ("personal", "business"):
        raise InvalidRequest("mh:cat_type must be personal or business")

    challenge = _optional_string(params, "code_challenge")
    method = params.get("code_challenge_method")
    if challenge is not None and method != "S256":
        raise InvalidRequest("code_challenge_method must be S256")

    prompt = str(params.get("prompt") or "").split()
    # OIDC Core §11: offline_access is ignored unless prompt=consent and a code is returned
    offline = (
        "offline_access" in scopes
        and "consent" in prompt
        and "code" in response_type
        and "refresh_token" in client.grant_types
    )
    return AuthorizationRequest(
        client_id=client.client_id,
        response_type=response_type,
        response_mode=params["response_mode"],
        redirect_uri=params["redirect_uri"],
        scopes=tuple(scopes),
        journey=journey,
        user_id=user_id,
        bank_scope=bank_scope,
        connection_id=connection_id,
        state=state,
        nonce=nonce,
        offline=offline,
        consent=consent,
        permissions=permissions,
        expires_at=expires_at,
        transaction_from=transaction_from,
        cat_type=cat_type,
        code_challenge=challenge,
        code_challenge_method=method if challenge else None,
        claims=claims,
        request_object=dict(params),
        payment=payment,
    )


#: seed 001 "Payments Claim": the value's members, and the references' limit
PAYMENT_MEMBERS: frozenset[str] = frozenset({"payeeId", "amount", "payeeRef", "payerRef"})
MAX_REFERENCE = 18


def validate_payment(fake: FakeMoneyhub, client: FakeClient, request: Any) -> dict[str, Any]:
    """The ``mh:payment`` claim request: essential, under ``id_token``, with a payee of this
    client, a positive whole amount in pence and two references of at most 18 characters."""
    if not isinstance(request, dict) or request.get("essential") is not True:
        raise InvalidRequest("claims.id_token.mh:payment must be requested as essential")
    value = request.get("value")
    if not isinstance(value, dict) or set(value) != PAYMENT_MEMBERS:
        raise InvalidRequest("mh:payment value must hold exactly payeeId, amount, payeeRef "
                             "and payerRef")
    payee_id = value["payeeId"]
    payee = fake.payee(payee_id, client.client_id) if isinstance(payee_id, str) else None
    if payee is None or not payee.active:
        raise InvalidRequest("mh:payment payeeId is not an active payee of this client")
    amount = value["amount"]
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidRequest("mh:payment amount must be a positive integer (pence)")
    for name in ("payeeRef", "payerRef"):
        reference = value[name]
        if not isinstance(reference, str) or not 0 < len(reference) <= MAX_REFERENCE:
            raise InvalidRequest(f"mh:payment {name} must be 1 to {MAX_REFERENCE} characters")
    return dict(value)


def validate_consent(
    fake: FakeMoneyhub, consent: Any
) -> tuple[frozenset[str], datetime | None, datetime | None]:
    """Seed 003's ``mh:consent``: effective permissions, expiry and transaction history start."""
    if consent is None:
        return DEFAULT_PERMISSIONS, None, None
    if not isinstance(consent, dict):
        raise InvalidRequest("mh:consent value must be an object")
    unknown = set(consent) - CONSENT_KEYS
    if unknown:
        raise InvalidRequest(f"unknown mh:consent member(s): {', '.join(sorted(unknown))}")
    now = fake.utcnow()

    expires_at = None
    if "expirationDateTime" in consent:
        expires_at = parse_timestamp(consent["expirationDateTime"], "expirationDateTime")
        if expires_at <= now:
            raise InvalidRequest("expirationDateTime must be in the future")
        if expires_at > now + timedelta(days=MAX_CONSENT_DAYS):
            raise InvalidRequest(
                f"expirationDateTime must be at most {MAX_CONSENT_DAYS} days in the future"
            )
    transaction_from = None
    if "transactionFromDateTime" in consent:
        transaction_from = parse_timestamp(
            consent["transactionFromDateTime"], "transactionFromDateTime"
        )
        if transaction_from > now:
            raise InvalidRequest("transactionFromDateTime must not be in the future")
        if transaction_from < months_before(now, MAX_HISTORY_MONTHS):
            raise InvalidRequest(
                f"transactionFromDateTime must be at most {MAX_HISTORY_MONTHS} months in the past"
            )

    requested = consent.get("permissions", [])
    if not isinstance(requested, list) or not all(isinstance(p, str) for p in requested):
        raise InvalidRequest("mh:consent permissions must be an array of strings")
    unknown = set(requested) - PERMISSIONS
    if unknown:
        raise InvalidRequest(f"unknown permission(s): {', '.join(sorted(unknown))}")
    action = consent.get("permissionsAction")
    if action not in (None, "replace"):
        raise InvalidRequest("permissionsAction must be replace when given")
    if action == "replace":
        permissions = frozenset(requested)
        if not permissions & {"ReadAccountsBasic", "ReadAccountsDetail"}:
            raise InvalidRequest(
                "replacing permissions requires ReadAccountsBasic or ReadAccountsDetail"
            )
    else:
        permissions = DEFAULT_PERMISSIONS | set(requested)
    if "ReadTransactionsDetail" in permissions and not permissions & {
        "ReadTransactionsCredits", "ReadTransactionsDebits"
    }:
        raise InvalidRequest(
            "ReadTransactionsDetail requires ReadTransactionsCredits or ReadTransactionsDebits"
        )
    return permissions, expires_at, transaction_from


def parse_timestamp(value: Any, name: str) -> datetime:
    """An ISO 8601 date-time as sent in ``mh:consent`` (naive values are taken as UTC)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be an ISO 8601 date-time string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} is not an ISO 8601 date-time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def months_before(moment: datetime, months: int) -> datetime:
    """Calendar arithmetic: the same day ``months`` earlier (clamped to the month's length)."""
    years, month_index = divmod(moment.month - 1 - months, 12)
    year, month = moment.year + years, month_index + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _bank_scope(client: FakeClient, scopes: list[str]) -> str:
    """Seed 001: exactly one financial-institution scope, else ``invalid_scope``."""
    banks = [s for s in scopes if s.startswith("id:")]
    if not banks:
        raise InvalidScope("a financial institution scope (id:...) is required")
    if len(banks) > 1:
        raise InvalidScope(f"financial institution scopes are mutually exclusive: {banks}")
    value = banks[0].removeprefix("id:")
    if value in CONNECTION_TYPES:
        listed = {bank.type for bank in banks_of_type(value)}
        if not listed <= client.connection_types:
            raise InvalidScope(f"this client has no access to {value} connections")
    elif value in BANKS_BY_ID:
        if BANKS_BY_ID[value].type not in client.connection_types:
            raise InvalidScope(f"this client has no access to {BANKS_BY_ID[value].type} banks")
    else:
        raise InvalidScope(f"unknown bank {value!r}")
    return banks[0]


def _claims(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidRequest("claims is not valid JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("id_token", {}), dict):
        raise InvalidRequest("claims must be an object with an id_token object")
    return raw


def _claim_value(id_token_claims: dict[str, Any], name: str) -> Any:
    request = id_token_claims.get(name)
    if request is None:
        return None
    if not isinstance(request, dict):
        raise InvalidRequest(f"claims.id_token.{name} must be an object")
    return request.get("value")


def _optional_string(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and (not isinstance(value, str) or not value or len(value) > 512):
        raise InvalidRequest(f"{name} must be a non-empty string")
    return value
