"""Signing keys survive restarts and rotate; the encryption key ring binds and rotates."""

from __future__ import annotations

import secrets

import pytest
import requests

from aggregator.crypto import DecryptionError, KeyRing, load_key_ring, token_hash


def test_signing_keys_are_created_once_and_kept_across_restarts(make_as, tmp_path, signing_key_set):
    env = {"AGGREGATOR_DATA_DIR": str(tmp_path / "data")}
    first = make_as(generate_keys=True, **env)  # an empty Redis: the AS makes its keys
    kids = {key["kid"] for key in first.services.signing_keys.public_jwks()["keys"]}
    algs = {key["alg"] for key in first.services.signing_keys.public_jwks()["keys"]}
    assert {"RS256", "ES256", "PS256"} <= algs
    assert not kids & {record.kid for record in signing_key_set}, "made now, not the tests' shared set"
    second = make_as(generate_keys=True, **env)  # a restart: same Redis, same data directory
    assert {key["kid"] for key in second.services.signing_keys.public_jwks()["keys"]} == kids
    assert all("d" not in key for key in second.services.signing_keys.public_jwks()["keys"])


def test_rotation_keeps_old_keys_published(make_as):
    server = make_as()
    keys = server.services.signing_keys
    before = {key["kid"] for key in keys.public_jwks()["keys"]}
    new = keys.rotate()
    after = {key["kid"] for key in keys.public_jwks()["keys"]}
    assert before < after and set(new) <= after
    assert keys.current("RS256").kid in new
    stored = server.services.store.redis.hvals("keys:signing")
    assert all(value.startswith(b"v1.") for value in stored), "private keys are encrypted at rest"


def test_key_ring_round_trip_binds_to_the_record():
    ring = KeyRing([("a", secrets.token_bytes(32))])
    secret = "rt-" + secrets.token_urlsafe(24)  # long enough never to appear in the ciphertext by chance
    sealed = ring.encrypt_json({"refresh_token": secret}, "reg:1")
    assert ring.decrypt_json(sealed, "reg:1") == {"refresh_token": secret}
    assert secret not in sealed and "refresh_token" not in sealed
    with pytest.raises(DecryptionError):
        ring.decrypt_json(sealed, "reg:2")  # moved onto another record


def test_key_ring_rotation_still_decrypts_old_ciphertexts():
    ring = KeyRing([("a", secrets.token_bytes(32))])
    old = ring.encrypt(b"secret", "x")
    rotated = ring.rotated()
    assert rotated.primary != "a"
    assert rotated.decrypt(old, "x") == b"secret"
    assert rotated.needs_reencryption(old)
    assert not rotated.needs_reencryption(rotated.encrypt(b"secret", "x"))
    assert KeyRing.parse(rotated.serialize()).decrypt(old, "x") == b"secret"


def test_tampered_ciphertext_is_refused():
    ring = KeyRing([("a", secrets.token_bytes(32))])
    sealed = ring.encrypt(b"secret", "x")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(DecryptionError):
        ring.decrypt(flipped, "x")


def test_development_key_ring_is_created_once(tmp_path):
    first = load_key_ring(None, tmp_path)
    second = load_key_ring(None, tmp_path)
    assert first.serialize() == second.serialize()
    assert (tmp_path / "encryption-keys").stat().st_mode & 0o077 == 0


def test_token_hash_is_sha256():
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_jwks_publishes_the_public_keys(make_as):
    server = make_as()
    response = requests.get(server.url + "/jwks")
    assert {key["kid"] for key in response.json()["keys"]} == {
        key["kid"] for key in server.services.signing_keys.public_jwks()["keys"]
    }


def test_a_lost_encryption_key_stops_start_up_with_a_clear_message(make_as, tmp_path):
    from config import ConfigError

    make_as(AGGREGATOR_DATA_DIR=str(tmp_path / "one"))
    with pytest.raises(ConfigError) as caught:
        make_as(AGGREGATOR_DATA_DIR=str(tmp_path / "two"))  # another key ring, same Redis
    assert "AGGREGATOR_ENCRYPTION_KEYS" in str(caught.value)
