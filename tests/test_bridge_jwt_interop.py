"""The bridge's PHP JWT codec and the daemon agree, both ways.

WordPress mints connection tokens with ``AppointEase_RT_Jwt`` (wp-bridge,
includes/class-jwt.php); the daemon checks them with its own
``appointease_realtime.auth.verify_token`` (called here, not re-implemented), which gives the
identity or raises ``TokenError`` with the close code the socket gets (4001, 4002).
PHP encodes -> the daemon verifies, PyJWT encodes -> PHP verifies, and each refuses what the
other should refuse. Without a ``php`` binary the tests are skipped, except with ``CI=true``.
(tests/wordpress/test_bridge_token_to_daemon.py sends a token minted inside WordPress to a
running daemon's socket.)
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
import pytest

from appointease_realtime.auth import (
    AUDIENCE,
    CLOSE_INVALID_TOKEN,
    CLOSE_TOKEN_EXPIRED,
    Identity,
    TokenError,
    verify_token,
)
from tests.bridge_php import run_php

# The PHP for one request ``$in``: encode, issue or decode (tests/bridge_php.py runs it).
PHP_HANDLER = r"""
    try {
        switch ($in['op']) {
            case 'encode':
                $out[] = ['token' => AppointEase_RT_Jwt::encode($in['claims'], $in['secret'])];
                break;
            case 'issue':
                $out[] = AppointEase_RT_Jwt::issue(
                    $in['secret'], $in['sub'], $in['email'], $in['role'], $in['lifetime']
                );
                break;
            case 'decode':
                $claims = AppointEase_RT_Jwt::decode($in['token'], $in['secret'], $in['audience']);
                $out[] = ['ok' => true, 'claims' => $claims];
                break;
        }
    } catch (AppointEase_RT_Jwt_Error $e) {
        $out[] = ['ok' => false, 'reason' => $e->reason];
    }
"""


def _php(*requests: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the requests through the PHP codec in one process."""
    return run_php("class-jwt.php", PHP_HANDLER, requests)


def _secret() -> str:
    return secrets.token_hex(32)


def _daemon_accepts(token: str, secret: str) -> dict[str, Any]:
    """The claims of a token the daemon accepts: ``verify_token`` must pass first (it raises
    TokenError otherwise); the claims are then read without re-checking, to compare them."""
    verify_token(token, secret)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _refused(token: str, secret: str) -> tuple[int, str]:
    """The close code and message the daemon's check gives a token it must refuse."""
    with pytest.raises(TokenError) as refused:
        verify_token(token, secret)
    return refused.value.close_code, str(refused.value)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "wp:7",
        "email": "zoe@example.org",
        "role": "customer",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return claims


@pytest.mark.parametrize(
    ("sub", "email", "role"),
    [
        ("wp:1", "admin@example.org", "admin"),
        ("wp:12", "editor@example.org", "staff"),
        ("customer:zoe@example.org", "Zoe@Example.org", "customer"),
    ],
)
def test_php_issues_tokens_pyjwt_verifies(sub: str, email: str, role: str) -> None:
    secret = _secret()
    before = int(time.time())
    (issued,) = _php(
        {
            "op": "issue",
            "secret": secret,
            "sub": sub,
            "email": email,
            "role": role,
            "lifetime": 3600,
        }
    )
    identity = verify_token(issued["token"], secret)
    assert identity == Identity(email=email.lower(), role=role, subject=sub)
    claims = _daemon_accepts(issued["token"], secret)
    assert claims["sub"] == sub
    assert claims["email"] == email.lower()
    assert claims["role"] == role
    assert claims["aud"] == AUDIENCE
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["exp"] == issued["expires_at"]
    assert jwt.get_unverified_header(issued["token"]) == {"alg": "HS256", "typ": "JWT"}
    assert "=" not in issued["token"]


def test_php_clamps_lifetime_and_pyjwt_agrees() -> None:
    secret = _secret()
    (issued,) = _php(
        {
            "op": "issue",
            "secret": secret,
            "sub": "wp:1",
            "email": "a@example.org",
            "role": "admin",
            "lifetime": 48 * 3600,
        }
    )
    claims = _daemon_accepts(issued["token"], secret)
    assert claims["exp"] - claims["iat"] == 12 * 3600


def test_php_encoded_arbitrary_claims_round_trip_through_pyjwt() -> None:
    secret = _secret()
    odd = _claims(
        email="zoë/café@example.org",
        note='quote " backslash \\ slash / emoji \U0001f600 nul-free',
        nested={"list": [1, 2.5, None, True], "map": {"k": "v"}},
    )
    (answer,) = _php({"op": "encode", "claims": odd, "secret": secret})
    assert _daemon_accepts(answer["token"], secret) == odd


def test_php_tokens_the_daemon_refuses() -> None:
    secret = _secret()
    now = int(time.time())
    expired, wrong_aud, good, long_lived, bad_role, no_email, early = _php(
        {"op": "encode", "claims": _claims(iat=now - 7200, exp=now - 3600), "secret": secret},
        {"op": "encode", "claims": _claims(aud="someone-else"), "secret": secret},
        {"op": "encode", "claims": _claims(), "secret": secret},
        {"op": "encode", "claims": _claims(exp=now + 13 * 3600), "secret": secret},
        {"op": "encode", "claims": _claims(role="root"), "secret": secret},
        {"op": "encode", "claims": _claims(email=None), "secret": secret},
        {"op": "encode", "claims": _claims(iat=now + 600, exp=now + 1200), "secret": secret},
    )
    for refused, words in (
        (long_lived, "12 hours"),
        (bad_role, "role"),
        (no_email, "email"),
        (early, "not yet valid"),
    ):
        code, message = _refused(refused["token"], secret)
        assert code == CLOSE_INVALID_TOKEN and words in message.lower(), message
    assert _refused(expired["token"], secret) == (CLOSE_TOKEN_EXPIRED, "token expired")
    code, message = _refused(wrong_aud["token"], secret)
    assert code == CLOSE_INVALID_TOKEN and "audience" in message.lower()
    code, message = _refused(good["token"], _secret())
    assert code == CLOSE_INVALID_TOKEN and "signature" in message.lower()
    verify_token(good["token"], secret)  # the same token with its own secret passes


@pytest.mark.parametrize("role", ["customer", "staff", "admin"])
def test_pyjwt_encodes_php_decodes(role: str) -> None:
    secret = _secret()
    claims = _claims(role=role, email=f"{role}@example.org", sub=f"customer:{role}@example.org")
    token = jwt.encode(claims, secret, algorithm="HS256")
    listed = jwt.encode(_claims(aud=["other", AUDIENCE]), secret, algorithm="HS256")
    plain, with_list = _php(
        {"op": "decode", "token": token, "secret": secret, "audience": AUDIENCE},
        {"op": "decode", "token": listed, "secret": secret, "audience": AUDIENCE},
    )
    assert plain == {"ok": True, "claims": claims}
    assert verify_token(token, secret).role == role  # and the daemon takes the same token
    assert with_list["ok"] is True
    assert with_list["claims"]["aud"] == ["other", AUDIENCE]


def test_php_refuses_bad_pyjwt_tokens() -> None:
    secret = _secret()
    now = int(time.time())
    cases = {
        "wrong secret": (jwt.encode(_claims(), _secret(), algorithm="HS256"), "bad_signature"),
        "expired": (
            jwt.encode(_claims(iat=now - 7200, exp=now - 3600), secret, algorithm="HS256"),
            "expired",
        ),
        "wrong audience": (
            jwt.encode(_claims(aud="another-service"), secret, algorithm="HS256"),
            "bad_audience",
        ),
        "HS512 with the right secret": (
            jwt.encode(_claims(), secret + secret, algorithm="HS512"),
            "unsupported_alg",
        ),
        "alg none": (jwt.encode(_claims(role="admin"), None, algorithm="none"), "malformed"),
        "lives 13 h": (
            jwt.encode(_claims(exp=now + 13 * 3600), secret, algorithm="HS256"),
            "too_long",
        ),
        "issued in the future": (
            jwt.encode(_claims(iat=now + 600, exp=now + 1200), secret, algorithm="HS256"),
            "not_yet_valid",
        ),
    }
    answers = _php(
        *(
            {"op": "decode", "token": token, "secret": secret, "audience": AUDIENCE}
            for token, _ in cases.values()
        )
    )
    for (name, (_, reason)), answer in zip(cases.items(), answers, strict=True):
        assert answer == {"ok": False, "reason": reason}, name


def test_many_random_tokens_agree_both_ways() -> None:
    secret = _secret()
    py_tokens = []
    claim_sets = []
    for i in range(40):
        claims = _claims(
            sub=f"wp:{secrets.randbelow(10**6)}",
            email=f"user{i}.{secrets.token_hex(3)}@example.org",
            role=("customer", "staff", "admin")[i % 3],
            exp=int(time.time()) + 60 + secrets.randbelow(12 * 3600 - 120),
        )
        claim_sets.append(claims)
        py_tokens.append(jwt.encode(claims, secret, algorithm="HS256"))
    answers = _php(
        *({"op": "decode", "token": t, "secret": secret, "audience": AUDIENCE} for t in py_tokens),
        *({"op": "encode", "claims": c, "secret": secret} for c in claim_sets),
    )
    decoded, encoded = answers[:40], answers[40:]
    assert [a["claims"] for a in decoded] == claim_sets
    assert [_daemon_accepts(a["token"], secret) for a in encoded] == claim_sets
    # Same claims, same key order, same bytes: both libraries produce the identical token.
    assert [a["token"] for a in encoded] == py_tokens
