"""The bridge's hold guard in a real WordPress, over HTTP, with hold cookies made by the daemon's
own ``hold_cookie.mint`` and locks written like the daemon writes them (database clock).

A booking (``POST /appointease/v1/appointments``) or reschedule
(``PUT /appointease/v1/appointments/<id or strong_id>``) onto a slot another client holds is
answered 409 ``appointease_rt_slot_held`` before the stand-in AppointEase runs; the holder's
request goes on. The filter ``appointease_rt_enforce_holds`` and a missing token secret turn
it off. With the real daemon and Chromium: ``test_hold_browser.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from wp_harness import DEFAULT_TOKEN_SECRET, RestResponse, WordPressSite

from appointease_realtime import hold_cookie

DAY = "2030-05-06"
HOLDER = "anonymous_1761527416882_q0q2y9pwf"
OTHER = "anonymous_1761527419999_zzzzzzzzz"
ROUTE = "/appointease/v1/appointments"
COUNTER = "appointease_rt_refused_bookings"
PAGE = "/wp-admin/options-general.php?page=appointease-realtime"
MESSAGE = (
    "This time is being booked by someone else. "
    "Please pick another time or try again in {} minutes."
)


def cookie(client_id: str, secret: str = DEFAULT_TOKEN_SECRET, **kwargs: Any) -> dict[str, str]:
    """The Cookie header a browser sends after the daemon's upgrade for ``client_id``."""
    return {"Cookie": f"{hold_cookie.NAME}={hold_cookie.mint(secret, client_id, **kwargs)}"}


def book(
    site: WordPressSite, when: str, employee_id: int = 3, headers: dict[str, str] | None = None
) -> RestResponse:
    """The booking block's POST (its body: ``date`` is "Y-m-d H:i:s")."""
    body = {
        "name": "Zoe",
        "email": "zoe@example.org",
        "phone": "555",
        "date": when,
        "service_id": 1,
        "employee_id": employee_id,
    }
    return site.rest("POST", ROUTE, body, headers=headers)


def reschedule(
    site: WordPressSite, appointment: int | str, when: str, headers: dict[str, str] | None = None
) -> RestResponse:
    """The booking block's PUT (``new_date``; the employee stays the appointment's own)."""
    return site.rest(
        "PUT", f"{ROUTE}/{appointment}", {"new_date": when, "reason": "moved"}, headers=headers
    )


def refused_count(site: WordPressSite) -> int:
    return int(site.php(f"echo (int) get_option('{COUNTER}', 0);").strip())


def assert_held(response: RestResponse, max_seconds: int = 600) -> None:
    """The guard's 409: code, message with the minutes left, data.status and data.expiresIn."""
    assert response.status == 409, response.text
    body = response.json
    assert body["code"] == "appointease_rt_slot_held", body
    left = body["data"]["expiresIn"]
    assert body["data"]["status"] == 409
    assert isinstance(left, int) and max_seconds - 15 <= left <= max_seconds, body
    assert body["message"] == MESSAGE.format(max(1, math.ceil(left / 60))), body


def settings_page(site: WordPressSite) -> str:
    return str(site.admin_session().open(site.base_url + PAGE, timeout=30).read().decode())


def test_a_held_slot_is_refused_before_appointease_and_the_holder_books(
    wordpress_site: WordPressSite,
) -> None:
    site = wordpress_site
    site.insert_lock(DAY, "10:00:00", 3, HOLDER, seconds=600)

    assert_held(book(site, f"{DAY} 10:00:00"))  # no cookie
    assert_held(book(site, f"{DAY} 10:00:00", headers=cookie(OTHER)))  # another client
    # The date + time form some clients send names the same slot.
    assert_held(site.rest("POST", ROUTE, {"date": DAY, "time": "10:00", "employee_id": 3}))
    assert site.appointments() == [] and site.outbox_rows() == []

    # Other slots are free for anybody; the holder books its own.
    assert book(site, f"{DAY} 10:00:00", employee_id=4).status == 201
    assert book(site, f"{DAY} 10:30:00").status == 201
    mine = book(site, f"{DAY} 10:00:00", headers=cookie(HOLDER))
    assert mine.status == 201 and mine.json["success"] is True, mine.text
    assert [r["appointment_date"].strftime("%H:%M") for r in site.appointments()] == [
        "10:00",
        "10:30",
        "10:00",
    ]
    assert refused_count(site) == 3
    assert "3 bookings refused so far" in settings_page(site)
    assert site.php_problems() == []


def test_a_reschedule_onto_a_held_slot_by_id_or_strong_id(wordpress_site: WordPressSite) -> None:
    site = wordpress_site
    first = book(site, f"{DAY} 15:00:00").json
    second = book(site, f"{DAY} 16:00:00", employee_id=4).json
    site.insert_lock(DAY, "11:00:00", 3, HOLDER, seconds=90)

    assert_held(reschedule(site, first["id"], f"{DAY} 11:00:00"), max_seconds=90)
    assert_held(
        reschedule(site, first["strong_id"], f"{DAY} 11:00:00", cookie(OTHER)), max_seconds=90
    )
    # The employee is the appointment's own: employee 4 is free at 11:00.
    assert reschedule(site, second["id"], f"{DAY} 11:00:00").status == 200
    # An unknown appointment is AppointEase's own 404, not a 409.
    assert reschedule(site, 999999, f"{DAY} 11:00:00").status == 404
    # The holder moves its appointment onto its hold.
    moved = reschedule(site, first["strong_id"], f"{DAY} 11:00:00", cookie(HOLDER))
    assert moved.status == 200, moved.text
    dates = {r["id"]: r["appointment_date"].strftime("%H:%M") for r in site.appointments()}
    assert dates == {first["id"]: "11:00", second["id"]: "11:00"}
    # Two refusals; no event was queued for them (the refused calls never ran).
    assert refused_count(site) == 2
    events = [row["event"]["type"] for row in site.outbox_rows()]
    assert events == ["appointment.created"] * 2 + ["appointment.updated"] * 2


def test_forged_expired_and_foreign_cookies_count_as_no_cookie(
    wordpress_site: WordPressSite,
) -> None:
    site = wordpress_site
    site.insert_lock(DAY, "12:00:00", 3, HOLDER, seconds=600)
    good = hold_cookie.mint(DEFAULT_TOKEN_SECRET, HOLDER)
    client_id, expiry, signature = good.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    bad = {
        "forged signature": f"{client_id}.{expiry}.{flipped}",
        "another clientId": f"{OTHER}.{expiry}.{signature}",
        "expired": hold_cookie.mint(DEFAULT_TOKEN_SECRET, HOLDER, now=1_000_000),
        "another site's secret": hold_cookie.mint("another-site-secret-of-32-characters!", HOLDER),
        "over 400 characters": "x" * 401,
    }
    for what, value in bad.items():
        response = book(site, f"{DAY} 12:00:00", headers={"Cookie": f"{hold_cookie.NAME}={value}"})
        assert response.json.get("code") == "appointease_rt_slot_held", (what, response.text)
    assert site.appointments() == []
    assert refused_count(site) == len(bad)

    # appointease_realtime_can_book() without a clientId uses the same cookie.
    verdicts = site.php(
        "$out = [];"
        "foreach ($args[0] as $value) {"
        "  $_COOKIE['appointease_rt_hold'] = $value;"
        "  $out[] = appointease_realtime_can_book($args[1], '12:00', 3);"
        "  $out[] = appointease_realtime_can_book($args[1], '12:00', 3, '');"
        "}"
        "unset($_COOKIE['appointease_rt_hold']);"
        "$out[] = appointease_realtime_can_book($args[1], '12:00', 3);"
        f"$out[] = appointease_realtime_can_book($args[1], '12:00', 3, '{HOLDER}');"
        "echo json_encode($out);",
        [good, *bad.values()],
        DAY,
    )
    assert json.loads(verdicts.strip().splitlines()[-1]) == [True, True] + [False, False] * len(
        bad
    ) + [False, True]
    assert (
        book(site, f"{DAY} 12:00:00", headers={"Cookie": f"{hold_cookie.NAME}={good}"}).status
        == 201
    )


def test_the_filter_or_no_token_secret_turn_the_guard_off(wordpress_site: WordPressSite) -> None:
    site = wordpress_site
    site.insert_lock(DAY, "13:00:00", 3, HOLDER, seconds=600)
    moved = book(site, f"{DAY} 17:00:00").json["id"]
    assert "<strong>On</strong>" in settings_page(site)

    off = Path(site.docroot) / "wp-content" / "mu-plugins" / "aert-enforce-off.php"
    off.write_text("<?php add_filter( 'appointease_rt_enforce_holds', '__return_false' );\n")
    try:
        # AppointEase's own can_book() call still refuses (its own code); the guard is silent.
        own = book(site, f"{DAY} 13:00:00")
        assert (own.status, own.json["code"]) == (409, "slot_held"), own.text
        # The stand-in's reschedule does not check holds: with the guard off it goes through.
        assert reschedule(site, moved, f"{DAY} 13:00:00").status == 200
        page = settings_page(site)
        assert "Turned off by the appointease_rt_enforce_holds filter" in page
    finally:
        off.unlink()
    assert refused_count(site) == 0
    assert "0 bookings refused so far" in page

    # No token secret: no cookie, WordPress cannot tell the holder: today's behaviour.
    site.insert_lock(DAY, "14:00:00", 3, HOLDER, seconds=600)
    site.configure(token_secret="")
    assert reschedule(site, moved, f"{DAY} 14:00:00", cookie(HOLDER)).status == 200
    assert reschedule(site, moved, f"{DAY} 13:00:00").status == 200
    assert book(site, f"{DAY} 14:00:00").json["code"] == "slot_held"
    page = settings_page(site)
    assert "No usable token secret" in page
    assert refused_count(site) == 0

    site.configure(token_secret=DEFAULT_TOKEN_SECRET)
    assert_held(reschedule(site, moved, f"{DAY} 14:00:00"))
    assert refused_count(site) == 1
    assert site.php_problems() == []
