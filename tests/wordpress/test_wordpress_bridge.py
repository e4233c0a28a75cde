"""The bridge plugin inside a real WordPress, without the daemon.

The daemon URL points at a closed port: bookings must still succeed quickly
and every event must wait in the outbox; a small signature-checking HTTP
receiver then stands in for the daemon to show that WP-Cron delivers what
was queued, with the same webhook-id.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from wp_harness import DEFAULT_HOOK_SECRET, WordPressSite


def _wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


class _Receiver:
    """Records signed hooks like the daemon's POST /hooks/booking (verify, then 200)."""

    def __init__(self, secret: str) -> None:
        self.events: list[tuple[dict[str, str], dict[str, Any]]] = []
        webhook = Webhook(secret)
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = webhook.verify(body, headers)
                except WebhookVerificationError as exc:
                    self._answer(401, {"error": str(exc), "code": "bad_signature"})
                    return
                if self.path != "/hooks/booking":
                    self._answer(404, {"error": "not found", "code": "not_found"})
                    return
                events.append((headers, payload))
                self._answer(200, {"ok": True})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    rec = _Receiver(DEFAULT_HOOK_SECRET)
    try:
        yield rec
    finally:
        rec.close()


def test_booking_with_daemon_down_is_fast_and_loses_nothing(
    wordpress_site: WordPressSite, receiver: _Receiver
) -> None:
    site = wordpress_site
    response = site.create_booking("2026-03-02", "10:00", 3, client_id="anonymous_1_a")
    assert response.status == 201, (response.text, site.server_log())
    assert response.elapsed < 2.0, f"booking took {response.elapsed:.2f}s with the daemon down"
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
    assert site.php_problems() == []


def test_new_appointment_action_is_hooked_too(
    wordpress_site: WordPressSite, receiver: _Receiver
) -> None:
    site = wordpress_site
    site.configure(rt_url=receiver.url)
    response = site.create_booking("2026-03-03", "09:00", 1, hook="new_appointment")
    assert response.status == 201, response.text
    # Delivered at the end of the request itself, no cron needed.
    assert _wait_for(lambda: receiver.events), site.server_log()
    assert receiver.events[0][1]["data"] == {"id": response.json["strong_id"]}
    assert _wait_for(lambda: site.outbox_rows() == [])


def test_can_book_is_honoured_inside_wordpress(wordpress_site: WordPressSite) -> None:
    site = wordpress_site
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
        "require_once ABSPATH . 'wp-admin/includes/template.php';"
        "(new AppointEase_RT_Settings_Page(AppointEase_RT_Plugin::instance()))->render();"
    )
    assert "APPOINTEASE_RT_URL is not defined" in page
    assert "APPOINTEASE_RT_HOOK_SECRET is not defined" in page
    assert 'disabled="disabled"' in page


def test_settings_page_and_ws_url(wordpress_site: WordPressSite, receiver: _Receiver) -> None:
    site = wordpress_site
    site.create_booking("2026-03-06", "10:00", 2)
    page = site.php(
        "wp_set_current_user(1);"
        "require_once ABSPATH . 'wp-admin/includes/template.php';"
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


def test_settings_page_test_button_over_http(
    wordpress_site: WordPressSite, receiver: _Receiver
) -> None:
    site = wordpress_site
    site.configure(rt_url=receiver.url)
    admin = site.admin_session()
    page_url = site.base_url + "/wp-admin/options-general.php?page=appointease-realtime"
    page = admin.open(page_url, timeout=30).read().decode()
    assert "Send test hook" in page
    assert "0 event(s) queued" in page
    nonce = re.search(r'name="_wpnonce" value="([0-9a-f]+)"', page)
    assert nonce is not None, page
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
            "_wpnonce": nonce.group(1),
            "_wp_http_referer": "/wp-admin/options-general.php?page=appointease-realtime",
        }
    )
    result = admin.open(post_url, data=form.encode(), timeout=30)
    assert result.url.endswith("options-general.php?page=appointease-realtime")
    assert "Test hook delivered (HTTP 200)." in result.read().decode()
    assert [p["type"] for _, p in receiver.events] == ["test.ping"]
    assert site.php_problems() == []
