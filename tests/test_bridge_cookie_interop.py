"""The hold cookie: the daemon (Python) and the bridge (PHP) agree, both ways.

The daemon mints ``appointease_rt_hold`` on every upgrade
(``appointease_realtime.hold_cookie.mint``); WordPress verifies it with
``AppointEase_RT_Hold_Cookie::verify`` (wp-bridge, includes/class-hold-cookie.php) before a
booking. Daemon-minted cookies verify in PHP, PHP-minted ones verify in the daemon (and are
byte for byte what the daemon mints), and forged, expired, oversized, malformed or
other-secret values are refused on both sides. Without a ``php`` binary the tests are
skipped, except with ``CI=true``.
"""

from __future__ import annotations

import time
from typing import Any

from appointease_realtime import hold_cookie
from tests.bridge_php import run_php

SECRET = "test-token-secret-of-at-least-32-characters"
OTHER_SECRET = "another-site-secret-of-32-characters!"
CLIENT_IDS = [
    "anonymous_1761527416882_q0q2y9pwf",
    "user_1761527416882_abcdefghi",
    "a.b.c",  # dots: everything before the last two dots is the clientId
    "x",
]

# The PHP for one request ``$in``: mint or verify (tests/bridge_php.py runs it).
PHP_HANDLER = r"""
    switch ($in['op']) {
        case 'mint':
            $out[] = AppointEase_RT_Hold_Cookie::mint($in['secret'], $in['client_id'], $in['now']);
            break;
        case 'verify':
            $out[] = AppointEase_RT_Hold_Cookie::verify($in['secret'], $in['value'], $in['now']);
            break;
    }
"""


def _php(*requests: dict[str, Any]) -> list[Any]:
    """Run the requests through the PHP class in one process."""
    return run_php("class-hold-cookie.php", PHP_HANDLER, requests)


def _php_verify(values: list[str], now: int, secret: str = SECRET) -> list[str | None]:
    return _php(*({"op": "verify", "secret": secret, "value": v, "now": now} for v in values))


def test_daemon_minted_cookies_verify_in_php() -> None:
    now = int(time.time())
    values = [hold_cookie.mint(SECRET, client_id, now=now) for client_id in CLIENT_IDS]
    assert _php_verify(values, now + 1) == CLIENT_IDS
    assert _php_verify(values, now + hold_cookie.LIFETIME_SECONDS - 1) == CLIENT_IDS
    # Without "now" PHP uses its own clock, as WordPress does at booking time.
    (answer,) = _php({"op": "verify", "secret": SECRET, "value": values[0], "now": None})
    assert answer == CLIENT_IDS[0]


def test_php_minted_cookies_verify_in_the_daemon_and_equal_its_own() -> None:
    now = int(time.time())
    minted = _php(
        *({"op": "mint", "secret": SECRET, "client_id": c, "now": now} for c in CLIENT_IDS)
    )
    assert minted == [hold_cookie.mint(SECRET, c, now=now) for c in CLIENT_IDS]
    assert [hold_cookie.verify(SECRET, value, now=now + 1) for value in minted] == CLIENT_IDS
    assert [hold_cookie.verify(SECRET, value) for value in minted] == CLIENT_IDS


def test_expired_cookies_are_refused_on_both_sides() -> None:
    now = 1_000_000
    expiry = now + hold_cookie.LIFETIME_SECONDS
    daemon_value = hold_cookie.mint(SECRET, "anonymous_1_abc", now=now)
    (php_value,) = _php(
        {"op": "mint", "secret": SECRET, "client_id": "anonymous_1_abc", "now": now}
    )
    for at in (expiry, expiry + 1, int(time.time())):
        assert _php_verify([daemon_value, php_value], at) == [None, None]
        assert hold_cookie.verify(SECRET, php_value, now=at) is None
        assert hold_cookie.verify(SECRET, daemon_value, now=at) is None
    assert _php_verify([daemon_value], expiry - 1) == ["anonymous_1_abc"]


def _forgeries(value: str) -> dict[str, str]:
    client_id, expiry, signature = value.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return {
        "another clientId": f"anonymous_2_xyz.{expiry}.{signature}",
        "a later expiry": f"{client_id}.{int(expiry) + 9}.{signature}",
        "a changed signature": f"{client_id}.{expiry}.{flipped}",
        "no signature": f"{client_id}.{expiry}.",
        "a padded signature": value + "=",
        "another site's secret": hold_cookie.mint(OTHER_SECRET, client_id, now=int(expiry) - 86400),
        "junk ''": "",
        "junk 'a'": "a",
        "junk 'a.b'": "a.b",
        "junk 'a.b.c'": "a.b.c",
        "junk '..'": "..",
        "a signed expiry of letters": f"{client_id}.1e9.{signature}",
        "a negative expiry": f"{client_id}.-{expiry}.{signature}",
        "an empty clientId": f".{expiry}.{signature}",
        "500 characters": "x" * 500,
    }


def test_forged_and_foreign_cookies_are_refused_on_both_sides() -> None:
    now = int(time.time())
    for value in (
        hold_cookie.mint(SECRET, "anonymous_1_abc", now=now),
        _php({"op": "mint", "secret": SECRET, "client_id": "anonymous_1_abc", "now": now})[0],
    ):
        forged = _forgeries(value)
        answers = _php_verify(list(forged.values()), now + 1)
        assert dict(zip(forged, answers, strict=True)) == dict.fromkeys(forged)
        assert {k: hold_cookie.verify(SECRET, v, now=now + 1) for k, v in forged.items()} == (
            dict.fromkeys(forged)
        )
        # The other site verifies its own cookies, never ours; no secret proves nothing.
        assert _php_verify([value], now + 1, secret=OTHER_SECRET) == [None]
        assert hold_cookie.verify(OTHER_SECRET, value, now=now + 1) is None
        assert _php_verify([value], now + 1, secret="") == [None]
        assert hold_cookie.verify("", value, now=now + 1) is None


def test_the_400_character_limit_is_the_same() -> None:
    now = int(time.time())
    # clientId + "." + 10-digit expiry + "." + 43-character signature.
    fits = hold_cookie.mint(SECRET, "a" * (400 - 1 - 10 - 1 - 43), now=now)
    over = hold_cookie.mint(SECRET, "a" * (400 - 1 - 10 - 1 - 43 + 1), now=now)
    assert (len(fits), len(over)) == (400, 401)
    assert _php_verify([fits, over], now + 1) == ["a" * 345, None]
    assert hold_cookie.verify(SECRET, fits, now=now + 1) == "a" * 345
    assert hold_cookie.verify(SECRET, over, now=now + 1) is None


def test_leading_zeros_in_the_expiry_mean_the_same_on_both_sides() -> None:
    now = int(time.time())
    client_id, expiry, signature = hold_cookie.mint(SECRET, "c", now=now).split(".")
    padded = f"{client_id}.00{expiry}.{signature}"
    assert hold_cookie.verify(SECRET, padded, now=now + 1) == "c"
    assert _php_verify([padded], now + 1) == ["c"]


def test_a_connection_token_is_no_cookie_in_php_either() -> None:
    from appointease_realtime.auth import mint_token

    token = mint_token(SECRET, "wp:1", "a@example.com", "customer")
    assert token.count(".") == 2
    assert _php_verify([token], int(time.time())) == [None]
    assert hold_cookie.verify(SECRET, token) is None
