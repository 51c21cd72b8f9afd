"""A scan of the whole store finds no plaintext password, token or secret."""

from __future__ import annotations

import redis

from aggregator.upstream.contract import DATA_SCOPES, Institution, LinkedInstitution, UpstreamToken
from tests.fixtures.aggregator import PersonAgent

PASSWORD = "my very secret passphrase"
REFRESH = "upstream-refresh-token-XYZ123"
ACCESS = "upstream-access-token-ABC987"


def _all_bytes(url: str) -> bytes:
    client = redis.Redis.from_url(url)
    dump = b""
    for key in client.scan_iter(count=1000):
        dump += key + b"\n"
        kind = client.type(key)
        if kind == b"string":
            dump += client.get(key) or b""
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                dump += field + b"=" + value + b"\n"
        elif kind == b"set":
            dump += b"\n".join(client.smembers(key))
        elif kind == b"zset":
            dump += b"\n".join(client.zrange(key, 0, -1))
        elif kind == b"list":
            dump += b"\n".join(client.lrange(key, 0, -1))
        elif kind == b"stream":
            for _, fields in client.xrange(key):
                dump += b"".join(k + v for k, v in fields.items())
    return dump


def test_no_plaintext_secret_in_redis(make_as, redis_url):
    server = make_as()
    agent = PersonAgent(server.url)
    agent.signup("secretive", PASSWORD)
    session_cookie = next(iter(agent.http.cookies.values()))
    person = server.services.store.people.find_by_username("secretive")
    server.services.store.registrations.save_linked(person.id, "sandbox", LinkedInstitution(
        Institution("astoria", "Bank of Astoria"), external_id="8879874",
        endpoint="http://127.0.0.1:8001/astoria/users/8879874", secrets={"refresh_token": REFRESH},
        token=UpstreamToken(ACCESS, 2_000_000_000),
    ))
    server.services.store.link_states.put("state-value-QWERTY", {"remember": {"verifier": "PKCE-V"}})
    dump = _all_bytes(redis_url)
    assert dump, "the store is populated"
    for secret in (PASSWORD, REFRESH, ACCESS, session_cookie, "state-value-QWERTY", "PKCE-V"):
        assert secret.encode() not in dump, f"{secret!r} is stored in plaintext"
    assert b"$argon2id$" in dump, "passwords are argon2id hashes"


def test_a_refresh_finishing_after_removal_leaves_nothing(make_as, redis_url):
    server = make_as()
    store = server.services.store.registrations
    record = store.save_linked("p1", "sandbox", LinkedInstitution(
        Institution("astoria", "Bank of Astoria"), external_id="1", endpoint="http://bank",
        secrets={"refresh_token": "a"},
    ))
    store.delete(record)
    store.store_refreshed(record, DATA_SCOPES, UpstreamToken(ACCESS, 2_000_000_000),
                          {"refresh_token": "rotated"}, None)
    leftovers = [key for key in redis.Redis.from_url(redis_url).scan_iter() if b"{u:p1}" in key]
    assert leftovers == []
