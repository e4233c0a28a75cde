"""The settings page in a real WordPress, driven over HTTP by logged-in users.

Settings are saved through WordPress's own options.php (Settings API) and the
"Generate secrets" button through admin-post.php; what is stored is read back
from the database, and what the bridge then does with it (signed hooks to a
stand-in daemon, tokens verified with PyJWT) shows that the page's values are
the ones in force.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import jwt
from wp_harness import (
    DEFAULT_HOOK_SECRET,
    DEFAULT_TOKEN_SECRET,
    TOKEN_ROUTE,
    HookReceiver,
    WordPressSite,
    html_forms,
)

PAGE = "/wp-admin/options-general.php?page=appointease-realtime"
OPTION = "appointease_rt_settings"
FIELDS = ("url", "public_url", "hook_secret", "token_secret")
SETTINGS_FORM = "appointease-rt-settings"
GENERATE_FORM = "appointease-rt-generate"


def _name(field: str) -> str:
    return f"{OPTION}[{field}]"


def _hook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _mask(secret: str) -> str:
    return f"{secret[:6]}...{secret[-4:]}"


def _open(
    opener: urllib.request.OpenerDirector, url: str, data: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """(status, final URL, body) of a GET, or of a form POST when ``data`` is given."""
    body = None if data is None else urllib.parse.urlencode(data).encode()
    try:
        with opener.open(url, data=body, timeout=30) as response:
            return response.status, response.url, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, url, err.read().decode(errors="replace")


def _page(site: WordPressSite, opener: urllib.request.OpenerDirector) -> str:
    status, _, text = _open(opener, site.base_url + PAGE)
    assert status == 200, text
    return text


def _submit(
    site: WordPressSite, opener: urllib.request.OpenerDirector, form_id: str, **changes: str
) -> tuple[int, str, str]:
    """Submit a form of the settings page as a browser would, with ``changes``."""
    form = html_forms(_page(site, opener))[form_id]
    return _open(opener, form.action, {**form.fields, **changes})


def _stored(site: WordPressSite) -> Any:
    return json.loads(site.php(f"echo json_encode(get_option('{OPTION}', null));"))


def _store(site: WordPressSite, values: dict[str, str]) -> None:
    site.php(f"update_option('{OPTION}', $args[0]);", values)


def _in_force(site: WordPressSite) -> dict[str, Any]:
    return dict(
        json.loads(
            site.php(
                "$c = AppointEase_RT_Plugin::instance()->config();"
                "echo json_encode(['url' => $c->url, 'public_url' => $c->public_url,"
                " 'hook_secret' => $c->secret, 'token_secret' => $c->token_secret,"
                " 'locked' => (object) $c->locked]);"
            )
        )
    )


def _valid_values(url: str = "http://127.0.0.1:9") -> dict[str, str]:
    return {
        "url": url,
        "public_url": "ws://127.0.0.1:8080",
        "hook_secret": _hook_secret(),
        "token_secret": secrets.token_hex(32),
    }


def _env_lines(page: str) -> dict[str, str]:
    found = re.search(r'<textarea id="appointease-rt-env"[^>]*>([^<]*)</textarea>', page)
    if found is None:
        return {}
    return dict(line.split("=", 1) for line in found.group(1).strip().splitlines())


def _error_notices(page: str) -> list[str]:
    pattern = r"id='setting-error-(appointease_rt_[a-z_]+)'[^>]*class='notice notice-error"
    return re.findall(pattern, page)


def test_saved_settings_are_validated_masked_and_used(
    wordpress_factory: Any, receiver: HookReceiver
) -> None:
    # No constant at all: everything comes from the page.
    site = wordpress_factory()
    admin = site.admin_session()
    form = html_forms(_page(site, admin))[SETTINGS_FORM]
    assert {_name(f) for f in FIELDS} <= set(form.fields)
    assert form.fields["option_page"] == "appointease_rt"

    hook, token = _hook_secret(), secrets.token_urlsafe(40)
    receiver.secret = hook
    status, url, page = _submit(
        site,
        admin,
        SETTINGS_FORM,
        **{
            _name("url"): f" {receiver.url}/ ",
            _name("public_url"): "ws://127.0.0.1:8080/",
            _name("hook_secret"): hook,
            _name("token_secret"): token,
        },
    )
    assert status == 200 and "settings-updated=true" in url, (status, url)
    assert "Settings saved." in page
    assert _error_notices(page) == []
    assert _stored(site) == {
        "url": receiver.url,
        "public_url": "ws://127.0.0.1:8080",
        "hook_secret": hook,
        "token_secret": token,
    }
    # Never printed back in full: shortened, and the password fields stay empty.
    for secret in (hook, token):
        assert secret not in page
        assert _mask(secret) in page
    again = html_forms(page)[SETTINGS_FORM].fields
    assert again[_name("hook_secret")] == again[_name("token_secret")] == ""
    assert again[_name("url")] == receiver.url

    # Submitting the form untouched (empty secret fields) keeps the secrets.
    _submit(site, admin, SETTINGS_FORM)
    assert _stored(site)["hook_secret"] == hook and _stored(site)["token_secret"] == token

    # The bridge uses them: a test hook signed with the stored secret...
    status, _, page = _submit(site, admin, "appointease-rt-test")
    assert "Test hook delivered (HTTP 200)." in page, page
    assert [p["type"] for _, p in receiver.events] == ["test.ping"]
    assert receiver.refused == 0
    # ...and connection tokens signed with the stored token secret.
    site.create_user("sub1", "subscriber")
    answer = site.user_session("sub1").rest("GET", TOKEN_ROUTE)
    assert answer.status == 200, answer.text
    claims = jwt.decode(
        answer.json["token"], token, algorithms=["HS256"], audience="appointease-realtime"
    )
    assert claims["role"] == "customer"
    assert answer.json["wsUrl"].startswith("ws://127.0.0.1:8080/ws/")
    assert site.php_problems() == []


def test_invalid_values_are_refused_with_a_notice(wordpress_factory: Any) -> None:
    site = wordpress_factory()
    good = _valid_values()
    _store(site, good)
    admin = site.admin_session()
    bad = {
        "url": ["ftp://example.org", "javascript:alert(1)", "http://", "http://x.example/?a=1"],
        "public_url": ["http://127.0.0.1:8080", "wss://", "example.org"],
        "hook_secret": [
            "not-a-whsec-secret-but-long-enough-0123456789",
            "whsec_this is not base64!!",
            "whsec_" + base64.b64encode(b"k" * 16).decode(),  # 16 bytes: too short
        ],
        "token_secret": ["tooShort7x", "a" * 20 + " " + "a" * 20],
    }
    for field, values in bad.items():
        for value in values:
            status, _, page = _submit(site, admin, SETTINGS_FORM, **{_name(field): value})
            assert status == 200, page
            assert _error_notices(page) == [f"appointease_rt_{field}"], (field, value, page)
            assert "was not saved" in page
            assert "Settings saved." not in page
            assert _stored(site) == good, (field, value)
            if "secret" in field:
                assert value not in page  # a refused secret is not echoed either
    # The token secret must differ from the hook secret.
    _, _, page = _submit(site, admin, SETTINGS_FORM, **{_name("token_secret"): good["hook_secret"]})
    assert _error_notices(page) == ["appointease_rt_same_secret"]
    assert _stored(site) == good
    # A refused field does not stop a good one in the same submission.
    _, _, page = _submit(
        site,
        admin,
        SETTINGS_FORM,
        **{_name("url"): "ftp://x.example", _name("public_url"): "wss://rt.example.com"},
    )
    assert _error_notices(page) == ["appointease_rt_url"]
    assert _stored(site) == {**good, "public_url": "wss://rt.example.com"}


def test_constants_win_and_are_shown_locked(wordpress_site: WordPressSite) -> None:
    site = wordpress_site  # every APPOINTEASE_RT_* constant is defined
    constants = {
        "url": site.rt_url,
        "public_url": site.public_url,
        "hook_secret": DEFAULT_HOOK_SECRET,
        "token_secret": DEFAULT_TOKEN_SECRET,
    }
    stored = _valid_values(url="http://10.9.9.9:8080")
    _store(site, stored)
    in_force = _in_force(site)
    assert {f: in_force[f] for f in FIELDS} == constants
    assert set(in_force["locked"]) == set(FIELDS)

    admin = site.admin_session()
    page = _page(site, admin)
    forms = html_forms(page)
    settings = forms[SETTINGS_FORM]
    for field in FIELDS:
        assert _name(field) not in settings.fields  # nothing to submit for a locked field
    for constant in ("URL", "PUBLIC_URL", "HOOK_SECRET", "TOKEN_SECRET"):
        assert f"Locked: set by APPOINTEASE_RT_{constant} in wp-config.php" in page
    assert f'value="{site.rt_url}" readonly="readonly" disabled="disabled"' in page
    for secret in (DEFAULT_HOOK_SECRET, DEFAULT_TOKEN_SECRET):
        assert secret not in page
        assert _mask(secret) in page
    assert "generate" in forms[GENERATE_FORM].disabled

    # Posting values anyway changes nothing, neither the option nor what is in force.
    _submit(site, admin, SETTINGS_FORM, **{_name(f): v for f, v in _valid_values().items()})
    assert _stored(site) == stored
    assert {f: _in_force(site)[f] for f in FIELDS} == constants
    status, _, page = _submit(site, admin, GENERATE_FORM)
    assert status == 200
    assert _stored(site) == stored
    assert _env_lines(page) == {}

    # Only the token secret left to the page: only it is generated.
    site.configure(token_secret="")
    page = _page(site, admin)
    assert _name("token_secret") in html_forms(page)[SETTINGS_FORM].fields
    assert "generate" not in html_forms(page)[GENERATE_FORM].disabled
    _, _, page = _submit(site, admin, GENERATE_FORM)
    lines = _env_lines(page)
    assert list(lines) == ["TOKEN_SECRET"], page
    after = _stored(site)
    assert after["hook_secret"] == stored["hook_secret"]
    assert after["token_secret"] == lines["TOKEN_SECRET"] != stored["token_secret"]
    assert site.php_problems() == []


def test_generated_secrets_are_shown_once_and_work(
    wordpress_factory: Any, receiver: HookReceiver
) -> None:
    site = wordpress_factory()
    _store(site, {"url": receiver.url, "public_url": "wss://rt.example.com"})
    admin = site.admin_session()
    assert "generate" not in html_forms(_page(site, admin))[GENERATE_FORM].disabled

    status, url, page = _submit(site, admin, GENERATE_FORM)
    assert status == 200 and url.endswith(PAGE), url
    lines = _env_lines(page)
    assert list(lines) == ["HOOK_SECRET", "TOKEN_SECRET"], page
    hook, token = lines["HOOK_SECRET"], lines["TOKEN_SECRET"]
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", hook), hook
    assert len(base64.b64decode(hook.removeprefix("whsec_"), validate=True)) == 32
    assert len(token) >= 32 and token != hook
    assert _stored(site) == {
        "url": receiver.url,
        "public_url": "wss://rt.example.com",
        "hook_secret": hook,
        "token_secret": token,
    }

    # Once: the next visit shows them shortened only.
    page = _page(site, admin)
    assert _env_lines(page) == {}
    assert hook not in page and token not in page
    assert _mask(hook) in page and _mask(token) in page

    # The lines are what the daemon needs: hooks verify with HOOK_SECRET, tokens with TOKEN_SECRET.
    receiver.secret = hook
    _, _, page = _submit(site, admin, "appointease-rt-test")
    assert "Test hook delivered (HTTP 200)." in page
    site.create_user("sub1", "subscriber")
    answer = site.user_session("sub1").rest("GET", TOKEN_ROUTE)
    jwt.decode(answer.json["token"], token, algorithms=["HS256"], audience="appointease-realtime")

    # Every press makes new ones.
    _, _, page = _submit(site, admin, GENERATE_FORM)
    fresh = _env_lines(page)
    assert fresh["HOOK_SECRET"] != hook and fresh["TOKEN_SECRET"] != token
    assert site.php_problems() == []


def test_only_admins_with_a_valid_nonce_change_settings(wordpress_factory: Any) -> None:
    site = wordpress_factory()
    good = _valid_values()
    _store(site, good)
    options_url = site.base_url + "/wp-admin/options.php"
    post_url = site.base_url + "/wp-admin/admin-post.php"
    new_values = {_name(f): v for f, v in _valid_values(url="http://10.1.1.1:1").items()}

    for role in ("subscriber", "editor"):
        site.create_user(f"{role}1", role)
        user = site.user_session(f"{role}1")

        def own_nonce(action: str, user: Any = user) -> str:
            answer = user.get("/wp-admin/admin-ajax.php?action=aert_nonce&for=" + action)
            assert answer.status == 200 and answer.text.isalnum(), answer.text
            return answer.text

        status, _, _ = _open(user.opener, site.base_url + PAGE)
        assert status == 403
        # Even with their own valid nonce, the capability check refuses them.
        status, _, _ = _open(
            user.opener,
            options_url,
            {
                "option_page": "appointease_rt",
                "action": "update",
                "_wpnonce": own_nonce("appointease_rt-options"),
                **new_values,
            },
        )
        assert status == 403, role
        status, _, _ = _open(
            user.opener,
            post_url,
            {
                "action": "appointease_rt_generate_secrets",
                "_wpnonce": own_nonce("appointease_rt_generate_secrets"),
            },
        )
        assert status == 403, role
        assert _stored(site) == good, role

    # An administrator without the nonce (a forged cross-site form) changes nothing either.
    admin = site.admin_session()
    form = html_forms(_page(site, admin))[SETTINGS_FORM].fields
    for nonce in ("", "0bad0"):
        forged = {**form, **new_values, "_wpnonce": nonce}
        status, _, _ = _open(admin, options_url, forged)
        assert status == 403, nonce
        status, _, _ = _open(
            admin, post_url, {"action": "appointease_rt_generate_secrets", "_wpnonce": nonce}
        )
        assert status == 403, nonce
    assert _stored(site) == good
    # With the nonce, the same administrator can.
    status, _, _ = _open(admin, options_url, {**form, **new_values})
    assert status == 200
    assert _stored(site)["url"] == "http://10.1.1.1:1"
