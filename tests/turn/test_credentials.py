"""TURN REST credentials (draft-uberti-behave-turn-rest-00 §2.2), checked against independent
HMAC vectors and against a real coturn running ``use-auth-secret``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.turn.coturn import Coturn
from tests.turn.turnclient import TurnTestClient
from turn.config import DEFAULT_TTL_S, MAX_TTL_S
from turn.credentials import TurnCredential, compute_password, make_credential


def test_username_is_expiry_colon_user_id() -> None:
    credential = make_credential("s3cret", "7d1c0b9e-user", ttl_s=600, now=1_700_000_000.9)
    assert credential.username == "1700000600:7d1c0b9e-user"
    assert credential.expires_at == 1_700_000_600


def test_default_ttl_is_one_hour() -> None:
    before = int(time.time())
    credential = make_credential("s3cret", "u1")
    assert DEFAULT_TTL_S == 3600
    assert before + 3600 <= credential.expires_at <= int(time.time()) + 3600
    assert re.fullmatch(r"\d{10}:u1", credential.username)


def test_password_matches_openssl() -> None:
    # echo -n "1700003600:user-42" | openssl dgst -sha1 -hmac kundlinow-test-secret -binary | base64
    credential = make_credential("kundlinow-test-secret", "user-42", ttl_s=3600, now=1_700_000_000)
    assert credential.password == "c8zBbDB24s/rDLHaTFSzVMnCAoo="


def test_password_matches_rfc2202_vector() -> None:
    # RFC 2202 §3 HMAC-SHA1 test case 2, digest 0xeffcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
    assert compute_password("Jefe", "what do ya want for nothing?") == (
        "7/zfauXrL6LSdBbV8YTfnCWafHk="
    )


def test_ttl_is_capped_at_24_hours() -> None:
    assert make_credential("s", "u", ttl_s=MAX_TTL_S, now=0).expires_at == 86400
    with pytest.raises(ValueError, match="TTL"):
        make_credential("s", "u", ttl_s=MAX_TTL_S + 1)
    with pytest.raises(ValueError, match="TTL"):
        make_credential("s", "u", ttl_s=0)


@pytest.mark.parametrize("user_id", ["", "a:b"])
def test_user_id_must_not_be_empty_or_hold_the_separator(user_id: str) -> None:
    with pytest.raises(ValueError, match="user id"):
        make_credential("s", user_id)


def test_secret_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="secret"):
        make_credential("", "u")


async def test_coturn_accepts_a_fresh_credential(coturn: Coturn) -> None:
    credential = make_credential(coturn.secret, "caller-1", ttl_s=60)
    async with TurnTestClient(coturn.address, credential.username, credential.password) as client:
        response = await client.allocate()
    assert response.error_code is None, response.attributes.get("ERROR-CODE")
    assert response.attributes["XOR-RELAYED-ADDRESS"][0] == "127.0.0.1"


async def test_coturn_refuses_an_expired_credential(coturn: Coturn) -> None:
    # Minted two hours ago with a one-hour TTL: expired an hour ago, correctly signed.
    credential = make_credential(coturn.secret, "caller-1", ttl_s=3600, now=time.time() - 7200)
    async with TurnTestClient(coturn.address, credential.username, credential.password) as client:
        response = await client.allocate()
    assert response.error_code == 401
    assert "XOR-RELAYED-ADDRESS" not in response.attributes


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda c, s: (c.username, compute_password("not-the-secret", c.username)),
            id="wrong-secret",
        ),
        pytest.param(
            lambda c, s: (c.username.replace("caller-1", "caller-2"), c.password),
            id="other-user-id",
        ),
        pytest.param(
            lambda c, s: (f"{c.expires_at + 86400}:caller-1", c.password), id="extended-expiry"
        ),
    ],
)
async def test_coturn_refuses_a_forged_credential(
    coturn: Coturn, forge: Callable[[TurnCredential, str], tuple[str, str]]
) -> None:
    credential = make_credential(coturn.secret, "caller-1", ttl_s=600)
    username, password = forge(credential, coturn.secret)
    async with TurnTestClient(coturn.address, username, password) as client:
        response = await client.allocate()
    assert response.error_code == 401
    assert "XOR-RELAYED-ADDRESS" not in response.attributes
