"""The bridge plugin inside a real WordPress, without the daemon.

The daemon URL points at a closed port: bookings must still succeed quickly
and every event must wait in the outbox; a small signature-checking HTTP
receiver then stands in for the daemon to show that WP-Cron delivers what
was queued, with the same webhook-id.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
from typing import Any

from wp_harness import (
    DEFAULT_HOOK_SECRET,
    PLUGIN_SLUG,
    HookReceiver,
    WordPressSite,
    html_forms,
)


def _wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_booking_with_daemon_down_is_fast_and_loses_nothing(
    wordpress_site: WordPressSite, receiver: HookReceiver
) -> None:
    site = wordpress_site
    response = site.create_booking("2026-03-02", "10:00", 3, client_id="anonymous_1_a")
    assert response.status == 201, (response.text, site.server_log())
    down_elapsed = response.elapsed
    strong_id = response.json["strong_id"]
    assert strong_id.startswith("APT-")

    rows = site.outbox_rows()
    assert len(rows) == 1, rows
    event = rows[0]["event"]
    assert event["type"] == "appointment.created"
    assert event["data"] == {"id": strong_id}
    webhook_id = rows[0]["webhook_id"]
    # The shutdown flush tried once and failed (connection refused); the event stays queued.
    assert _wait_for(lambda: site.outbox_rows()[0]["attempts"] >= 1), site.server_log()
    assert site.outbox_rows()[0]["last_status"] == 0

    # WP-Cron retries: still down -> still queued, same id.
    site.run_cron()
    rows = site.outbox_rows()
    assert [r["webhook_id"] for r in rows] == [webhook_id]
    assert rows[0]["attempts"] == 2

    # Cancel and reschedule are queued behind the creation, in order.
    assert site.reschedule_booking(strong_id, "2026-03-02 11:00:00").status == 200
    assert site.cancel_booking(response.json["id"]).status == 200
    assert site.cancel_booking(999999).status == 404  # a failed call queues nothing
    rows = site.outbox_rows()
    assert [r["event"]["type"] for r in rows] == [
        "appointment.created",
        "appointment.updated",
        "appointment.cancelled",
    ]
    assert rows[1]["event"]["data"] == {
        "id": response.json["id"],
        "previous": {"appointment_date": "2026-03-02 10:00:00", "employee_id": 3},
    }
    # The later events were not even tried while the creation is pending.
    assert [r["attempts"] for r in rows] == [2, 0, 0]

    # The daemon comes back: one cron run delivers all three, signed, in order.
    site.configure(rt_url=receiver.url)
    cron = site.run_cron()
    assert cron.status == 200, cron.text
    assert site.outbox_rows() == [], site.server_log()
    assert [p["type"] for _, p in receiver.events] == [
        "appointment.created",
        "appointment.updated",
        "appointment.cancelled",
    ]
    assert receiver.events[0][0]["webhook-id"] == webhook_id
    assert receiver.events[0][0]["content-type"] == "application/json"

    # Fast: the daemon being down cost the booking about nothing next to a booking with it up
    # (relative, so a busy machine slows both; absolute bounds of 1-2 s were flaky there).
    up = site.create_booking("2026-03-02", "12:00", 3, client_id="anonymous_1_b")
    assert up.status == 201, up.text
    assert down_elapsed < max(2.0, 2 * up.elapsed + 1.0), (
        f"booking took {down_elapsed:.2f}s with the daemon down, {up.elapsed:.2f}s with it up"
    )
    assert site.php_problems() == []


def test_new_appointment_action_is_hooked_too(
    wordpress_site: WordPressSite, receiver: HookReceiver
) -> None:
    site = wordpress_site
    site.configure(rt_url=receiver.url)
    response = site.create_booking("2026-03-03", "09:00", 1, hook="new_appointment")
    assert response.status == 201, response.text
    # Delivered at the end of the request itself, no cron needed.
    assert _wait_for(lambda: receiver.events), site.server_log()
    assert receiver.events[0][1]["data"] == {"id": response.json["strong_id"]}
    assert _wait_for(lambda: site.outbox_rows() == [])


def test_can_book_is_honoured_inside_wordpress(
    wordpress_factory: Any, closed_port_url: str
) -> None:
    """Without a token secret the bridge's guard is off (no hold cookie to tell the holder):
    only AppointEase's own call of appointease_realtime_can_book() protects a hold."""
    site = wordpress_factory(rt_url=closed_port_url, hook_secret=DEFAULT_HOOK_SECRET)
    site.insert_lock("2026-03-04", "10:00:00", 5, "holder_client", seconds=600)
    site.insert_lock("2026-03-04", "11:00:00", 5, "holder_client", seconds=-1)  # expired

    assert site.can_book("2026-03-04", "10:00", 5, "someone_else") is False
    assert site.can_book("2026-03-04", "10:00", 5, "holder_client") is True
    assert site.can_book("2026-03-04", "11:00", 5, "someone_else") is True
    assert site.can_book("2026-03-04", "10:00", 6, "someone_else") is True

    refused = site.create_booking("2026-03-04", "10:00", 5, client_id="someone_else")
    assert refused.status == 409
    assert refused.json["code"] == "slot_held"
    assert site.appointments() == []
    assert site.outbox_rows() == []

    accepted = site.create_booking("2026-03-04", "10:00", 5, client_id="holder_client")
    assert accepted.status == 201, accepted.text
    assert site.create_booking("2026-03-04", "11:00", 5, client_id="someone_else").status == 201
    assert len(site.outbox_rows()) == 2


def test_missing_constants_do_nothing_harmful(wordpress_factory: Any) -> None:
    site = wordpress_factory(rt_url=None, hook_secret=None)
    response = site.create_booking("2026-03-05", "10:00", 2)
    assert response.status == 201, response.text
    assert site.outbox_rows() == []
    page = site.php(
        "wp_set_current_user(1);"
        "require_once ABSPATH . 'wp-admin/includes/admin.php';"
        "(new AppointEase_RT_Settings_Page(AppointEase_RT_Plugin::instance()))->render();"
    )
    assert "The daemon URL is not set" in page and "APPOINTEASE_RT_URL" in page
    assert "The hook secret is not set" in page and "APPOINTEASE_RT_HOOK_SECRET" in page
    assert 'disabled="disabled"' in page


def test_settings_page_and_ws_url(wordpress_site: WordPressSite, receiver: HookReceiver) -> None:
    site = wordpress_site
    site.create_booking("2026-03-06", "10:00", 2)
    page = site.php(
        "wp_set_current_user(1);"
        "require_once ABSPATH . 'wp-admin/includes/admin.php';"
        "(new AppointEase_RT_Settings_Page(AppointEase_RT_Plugin::instance()))->render();"
    )
    assert "1 event(s) queued" in page
    assert "Not ready" in page
    assert "appointment.created" in page  # the last delivery error
    assert 'name="_wpnonce"' in page

    site.configure(rt_url=receiver.url)
    result = json.loads(
        site.php("echo json_encode(AppointEase_RT_Plugin::instance()->send_test_ping());")
    )
    assert result["ok"] is True, result
    assert receiver.events[-1][1]["type"] == "test.ping"
    assert receiver.events[-1][1]["data"] == {}

    # The booking block's localized bookingAPI gets the configured wsUrl.
    html = site.php(
        "wp_register_script('appointease-booking', 'https://example.org/b.js');"
        "wp_localize_script('appointease-booking', 'bookingAPI', "
        "  ['root' => '/wp-json/', 'nonce' => 'n', 'wsUrl' => 'ws://old:8080']);"
        "wp_enqueue_script('appointease-booking');"
        "do_action('wp_print_footer_scripts');"
    )
    data_at = html.index("var bookingAPI")
    override_at = html.index('window.bookingAPI.wsUrl = "ws://127.0.0.1:8080"')
    script_at = html.index("https://example.org/b.js")
    assert data_at < override_at < script_at, html
    assert site.php_problems() == []


def test_uninstall_removes_only_the_bridges_data(wordpress_site: WordPressSite) -> None:
    site = wordpress_site
    assert site.create_booking("2026-03-07", "10:00", 2).status == 201
    site.run_cron()  # fails (daemon down): records the last delivery error
    assert site.php("echo get_option('appointease_rt_last_error') ? 'set' : 'unset';") == "set"
    desk = site.create_user("desk", "subscriber")
    site.php(
        "update_option('appointease_rt_settings', ['url' => 'http://127.0.0.1:9']);"
        "set_transient('appointease_rt_generated_1', ['hook_secret'], 600);"
        "(new WP_User($args[0]))->add_cap('appointease_rt_staff');"
        "get_role('editor')->add_cap('appointease_rt_staff');",
        desk,
    )
    site.php("AppointEase_RT_Hold_Guard::count_refusal();")  # the refused-bookings counter
    assert site.php("echo get_option('appointease_rt_refused_bookings');") == "1"
    site.php(
        "require_once ABSPATH . 'wp-admin/includes/plugin.php';"
        "deactivate_plugins('appointease-realtime-bridge/appointease-realtime-bridge.php');"
        "uninstall_plugin('appointease-realtime-bridge/appointease-realtime-bridge.php');"
    )
    tables = {next(iter(r.values())) for r in site.sql("SHOW TABLES")}
    assert site.outbox_table not in tables
    assert {site.appointments_table, site.locks_table} <= tables
    assert len(site.appointments()) == 1
    left = site.sql(
        "SELECT option_name FROM wp_options WHERE option_name LIKE %s", ("%appointease_rt%",)
    )
    assert left == []
    assert "appointease_rt_flush_outbox" not in site.php("echo json_encode(_get_cron_array());")
    # The capability is gone from every role and from the user who had it directly.
    grants = site.sql(
        "SELECT 'role' AS kind FROM wp_options WHERE option_name = 'wp_user_roles'"
        " AND option_value LIKE %s UNION ALL SELECT 'user' FROM wp_usermeta"
        " WHERE meta_key = 'wp_capabilities' AND meta_value LIKE %s",
        ("%appointease_rt_staff%", "%appointease_rt_staff%"),
    )
    assert grants == []


def test_multisite_activation_and_uninstall_reach_every_site(wordpress_factory: Any) -> None:
    """get_sites() returns 100 sites unless told otherwise: a network of 101 must be covered."""
    site = wordpress_factory(multisite=True)
    total = int(
        site.php(
            "for ($i = 2; $i <= 101; $i++) {"
            "  $id = wp_insert_site(['domain' => get_network()->domain, 'path' => \"/s$i/\","
            "    'title' => \"Site $i\", 'user_id' => 1]);"
            "  if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); } }"
            "echo get_sites(['count' => true, 'number' => 0]);",
            timeout=300,
        )
    )
    assert total == 101

    def outbox_tables() -> set[str]:
        rows = site.sql("SHOW TABLES LIKE %s", ("%appointease\\_rt\\_outbox",))
        return {next(iter(r.values())) for r in rows}

    options_tables = [
        next(iter(r.values())) for r in site.sql("SHOW TABLES LIKE %s", ("wp\\_%options",))
    ]
    options_tables = [t for t in options_tables if re.fullmatch(r"wp_(\d+_)?options", t)]
    assert len(options_tables) == 101

    def leftovers() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for table in options_tables:
            rows = site.sql(
                f"SELECT option_name FROM `{table}` WHERE option_name LIKE %s"
                " OR (option_name LIKE %s AND option_value LIKE %s)",
                ("%appointease\\_rt%", "%user\\_roles", "%appointease_rt_staff%"),
            )
            if rows:
                found[table] = sorted(r["option_name"] for r in rows)
        return found

    # Network activation sets up every site, the 101st too.
    site.php(
        "require_once ABSPATH . 'wp-admin/includes/plugin.php';"
        "$r = activate_plugin($args[0], '', true);"
        "if (is_wp_error($r)) { fwrite(STDERR, $r->get_error_message()); exit(1); }",
        PLUGIN_SLUG,
    )
    assert len(outbox_tables()) == 101
    assert set(leftovers()) == set(options_tables)  # db version option + capability, everywhere
    assert leftovers()["wp_101_options"] == ["appointease_rt_db_version", "wp_101_user_roles"]

    site.php(
        "require_once ABSPATH . 'wp-admin/includes/plugin.php';"
        "deactivate_plugins($args[0], false, true);"
        "deactivate_plugins($args[0]);"
        "uninstall_plugin($args[0]);",
        PLUGIN_SLUG,
        timeout=300,
    )
    assert outbox_tables() == set()
    assert leftovers() == {}
    assert site.php_problems() == []


def test_settings_page_test_button_over_http(
    wordpress_site: WordPressSite, receiver: HookReceiver
) -> None:
    site = wordpress_site
    site.configure(rt_url=receiver.url)
    admin = site.admin_session()
    page_url = site.base_url + "/wp-admin/options-general.php?page=appointease-realtime"
    page = admin.open(page_url, timeout=30).read().decode()
    assert "Send test hook" in page
    assert "0 event(s) queued" in page
    nonce = html_forms(page)["appointease-rt-test"].fields.get("_wpnonce")
    assert nonce, page
    post_url = site.base_url + "/wp-admin/admin-post.php"

    # Without a valid nonce: refused, nothing sent.
    forged = urllib.parse.urlencode({"action": "appointease_rt_test_hook", "_wpnonce": "0"})
    try:
        admin.open(post_url, data=forged.encode(), timeout=30).read()
        raise AssertionError("a forged nonce was accepted")
    except urllib.error.HTTPError as err:
        assert err.code == 403
    assert receiver.events == []

    form = urllib.parse.urlencode(
        {
            "action": "appointease_rt_test_hook",
            "_wpnonce": nonce,
            "_wp_http_referer": "/wp-admin/options-general.php?page=appointease-realtime",
        }
    )
    result = admin.open(post_url, data=form.encode(), timeout=30)
    assert result.url.endswith("options-general.php?page=appointease-realtime")
    assert "Test hook delivered (HTTP 200)." in result.read().decode()
    assert [p["type"] for _, p in receiver.events] == ["test.ping"]
    assert site.php_problems() == []
