"""Connection tokens inside a real WordPress: the REST route and the page's wsUrl.

Users log in through wp-login.php and call the route with the ``wp_rest``
nonce, as the booking block would; tokens are checked with PyJWT exactly as
the daemon verifies them.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import jwt
from wp_harness import DEFAULT_TOKEN_SECRET, TOKEN_ROUTE, RestResponse, WordPressSite

PUBLIC_URL = "ws://127.0.0.1:8080"
AUDIENCE = "appointease-realtime"
JWT_RE = r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"


def _verify(token: str) -> dict[str, Any]:
    """What the daemon does with a token."""
    claims: dict[str, Any] = jwt.decode(
        token, DEFAULT_TOKEN_SECRET, algorithms=["HS256"], audience=AUDIENCE
    )
    return claims


def _header(response: RestResponse, name: str) -> str:
    return next((v for k, v in response.headers.items() if k.lower() == name.lower()), "")


def _assert_not_cacheable(response: RestResponse) -> None:
    cache_control = _header(response, "Cache-Control")
    assert "no-store" in cache_control, response.headers
    assert "private" in cache_control, response.headers


def _assert_token_answer(response: RestResponse, *, sub: str, email: str, role: str) -> None:
    assert response.status == 200, response.text
    body = response.json
    assert set(body) == {"token", "expiresAt", "expiresIn", "role", "wsUrl"}, body
    claims = _verify(body["token"])
    assert (claims["sub"], claims["email"], claims["role"]) == (sub, email, role)
    assert claims["exp"] - claims["iat"] == 3600 == body["expiresIn"]
    assert abs(claims["iat"] - time.time()) < 60
    expires_at = datetime.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(expires_at.timestamp()) == claims["exp"]
    assert body["role"] == role
    # The token is a path segment, so the block's "?email=..." suffix still works.
    assert body["wsUrl"] == f"{PUBLIC_URL}/ws/{body['token']}"
    _assert_not_cacheable(response)


def test_token_route_maps_wordpress_roles(wordpress_site: WordPressSite) -> None:
    site = wordpress_site
    editor_id = site.create_user("editor1", "editor", email="Editor.One@Example.org")
    subscriber_id = site.create_user("sub1", "subscriber", email="Sub.One@Example.org")
    staff_id = site.create_user("desk1", "subscriber", email="desk1@example.org")
    site.php("(new WP_User($args[0]))->add_cap('appointease_rt_staff');", staff_id)

    admin = site.user_session("admin", "admin-password")
    _assert_token_answer(
        admin.rest("GET", TOKEN_ROUTE), sub="wp:1", email="admin@example.org", role="admin"
    )
    # An editor can edit others' posts, but is no staff: staff see every customer's
    # name, e-mail and phone, so it takes the bridge's own capability.
    _assert_token_answer(
        site.user_session("editor1").rest("GET", TOKEN_ROUTE),
        sub=f"wp:{editor_id}",
        email="editor.one@example.org",
        role="customer",
    )
    _assert_token_answer(
        site.user_session("desk1").rest("GET", TOKEN_ROUTE),
        sub=f"wp:{staff_id}",
        email="desk1@example.org",
        role="staff",
    )
    _assert_token_answer(
        site.user_session("sub1").rest("GET", TOKEN_ROUTE),
        sub=f"wp:{subscriber_id}",
        email="sub.one@example.org",
        role="customer",
    )
    # Every call mints a fresh token (nothing frozen in a cache).
    first = admin.rest("GET", TOKEN_ROUTE).json["token"]
    time.sleep(1.1)
    assert admin.rest("GET", TOKEN_ROUTE).json["token"] != first
    assert site.php_problems() == []


def test_staff_capability_is_granted_on_activation_and_filterable(
    wordpress_site: WordPressSite,
) -> None:
    site = wordpress_site
    roles = json.loads(
        site.php(
            "$out = [];"
            "foreach (wp_roles()->role_objects as $name => $role) {"
            "  $out[$name] = $role->has_cap('appointease_rt_staff'); }"
            "echo json_encode($out);"
        )
    )
    # Activation (from the installed zip) gave it to administrators, and to nobody else.
    assert roles.pop("administrator") is True
    assert roles and not any(roles.values()), roles

    editor_id = site.create_user("editor2", "editor")
    role_of = "$u = new WP_User($args[0]);echo AppointEase_RT_Token::default_role($u);"
    assert site.php(role_of, editor_id) == "customer"
    # A site that does want editors as staff says so with the filter.
    as_editor = "add_filter('appointease_rt_staff_capability', fn() => 'edit_others_posts');"
    assert site.php(as_editor + role_of, editor_id) == "staff"
    assert site.php(as_editor + role_of, 1) == "admin"


def test_anonymous_and_cookie_without_nonce_get_401(wordpress_site: WordPressSite) -> None:
    site = wordpress_site
    anonymous = site.rest("GET", TOKEN_ROUTE)
    assert anonymous.status == 401, anonymous.text
    assert anonymous.json["code"] == "rest_not_logged_in"
    assert "token" not in anonymous.json
    _assert_not_cacheable(anonymous)

    site.create_user("sub2", "subscriber")
    session = site.user_session("sub2")
    # The login cookie alone does not authenticate a REST call (WordPress's CSRF guard).
    no_nonce = session.rest("GET", TOKEN_ROUTE, with_nonce=False)
    assert no_nonce.status == 401, no_nonce.text
    forged = session.rest("GET", TOKEN_ROUTE, with_nonce=False, headers={"X-WP-Nonce": "0bad0"})
    assert forged.status == 403, forged.text
    assert forged.json["code"] == "rest_cookie_invalid_nonce"
    assert "token" not in forged.text
    assert session.rest("GET", TOKEN_ROUTE).status == 200
    assert site.php_problems() == []


def test_customer_session_and_cross_site_requests(wordpress_site: WordPressSite) -> None:
    site = wordpress_site
    customer = site.customer_session("Zoe@Example.org")
    answer = site.rest("GET", TOKEN_ROUTE, opener=customer)
    _assert_token_answer(
        answer, sub="customer:zoe@example.org", email="zoe@example.org", role="customer"
    )
    # The site's own pages may ask (same origin, with or without an Origin header).
    same = site.rest("GET", TOKEN_ROUTE, opener=customer, headers={"Origin": site.base_url})
    assert same.status == 200, same.text
    same_fetch = site.rest(
        "GET", TOKEN_ROUTE, opener=customer, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert same_fetch.status == 200, same_fetch.text

    # Another site's page: WordPress would let it read the answer (it reflects any Origin
    # with Allow-Credentials), so the route refuses; a <script src> (no Origin, but
    # Sec-Fetch-Site: cross-site) and JSONP are refused too.
    refused = [
        site.rest("GET", TOKEN_ROUTE, opener=customer, headers={"Origin": "https://evil.example"}),
        site.rest("GET", TOKEN_ROUTE, opener=customer, headers={"Origin": "null"}),
        site.rest("GET", TOKEN_ROUTE, opener=customer, headers={"Origin": "http://127.0.0.1:1"}),
        site.rest("GET", TOKEN_ROUTE, opener=customer, headers={"Sec-Fetch-Site": "cross-site"}),
        site.rest("GET", TOKEN_ROUTE, opener=customer, query={"_jsonp": "steal"}),
    ]
    for response in refused:
        assert response.status == 403, response.text
        assert "token" not in response.text.replace("tokens", ""), response.text
        _assert_not_cacheable(response)
    assert refused[0].json["code"] == "appointease_rt_cross_origin"
    assert refused[3].json["code"] == "appointease_rt_cross_origin"
    assert "appointease_rt_jsonp_refused" in refused[4].text

    # A customer session is no WordPress login: other sessions' e-mails stay theirs.
    other = site.rest("GET", TOKEN_ROUTE, opener=site.customer_session("not-an-email"))
    assert other.status == 401
    assert site.php_problems() == []


def test_pages_hand_out_ws_url_with_token_only_to_known_visitors(
    wordpress_site: WordPressSite,
) -> None:
    site = wordpress_site
    token_url = site.base_url + "/index.php?rest_route=" + TOKEN_ROUTE

    anonymous = site.request("GET", "/")
    assert anonymous.status == 200
    assert f'window.bookingAPI.wsUrl = "{PUBLIC_URL}";' in anonymous.text, anonymous.text
    assert f'window.bookingAPI.rtTokenUrl = "{token_url}";' in anonymous.text
    assert "/ws/" not in anonymous.text

    site.create_user("sub3", "subscriber", email="sub3@example.org")
    page = site.user_session("sub3").get("/")
    assert page.status == 200
    match = re.search(
        r'window\.bookingAPI\.wsUrl = "' + re.escape(PUBLIC_URL) + r"/ws/(" + JWT_RE + ')";',
        page.text,
    )
    assert match is not None, page.text
    claims = _verify(match.group(1))
    assert (claims["email"], claims["role"]) == ("sub3@example.org", "customer")
    assert f'window.bookingAPI.rtTokenUrl = "{token_url}";' in page.text
    # WordPress prints bookingAPI, then the override, then the block's script.
    data_at = page.text.index("var bookingAPI")
    override_at = match.start()
    script_at = page.text.index("appointease-booking-standin.js")
    assert data_at < override_at < script_at
    assert "no-cache" in _header(page, "Cache-Control")

    customer_page = site.request("GET", "/", opener=site.customer_session("zoe@example.org"))
    match = re.search(r"/ws/(" + JWT_RE + ')";', customer_page.text)
    assert match is not None, customer_page.text
    assert _verify(match.group(1))["sub"] == "customer:zoe@example.org"
    _assert_not_cacheable(customer_page)
    assert site.php_problems() == []


def test_filters_and_missing_secret(wordpress_factory: Any) -> None:
    site = wordpress_factory(public_url=PUBLIC_URL, token_secret=DEFAULT_TOKEN_SECRET)
    sub_id = site.create_user("sub4", "subscriber")
    issue = (
        "wp_set_current_user($args[0]);"
        "$t = new AppointEase_RT_Token(AppointEase_RT_Plugin::instance()->config());"
        "$i = $t->issue_for_current();"
        "echo json_encode($i ? $i['claims'] : null);"
    )
    claims = json.loads(
        site.php(
            "add_filter('appointease_rt_token_lifetime', fn() => 86400);"
            "add_filter('appointease_rt_token_role', fn($r, $u) => 'staff', 10, 2);" + issue,
            sub_id,
        )
    )
    assert claims["role"] == "staff"
    assert claims["exp"] - claims["iat"] == 12 * 3600
    refused = site.php("add_filter('appointease_rt_token_role', fn() => '');" + issue, sub_id)
    assert json.loads(refused) is None
    unknown = site.php("add_filter('appointease_rt_token_role', fn() => 'root');" + issue, sub_id)
    assert json.loads(unknown) is None

    # Without APPOINTEASE_RT_TOKEN_SECRET: 503 on the route, plain wsUrl on pages.
    site.configure(token_secret="")
    session = site.user_session("sub4")
    disabled = session.rest("GET", TOKEN_ROUTE)
    assert disabled.status == 503, disabled.text
    assert disabled.json["code"] == "appointease_rt_tokens_disabled"
    page = session.get("/")
    assert f'window.bookingAPI.wsUrl = "{PUBLIC_URL}";' in page.text
    assert "rtTokenUrl" not in page.text
    # A secret that is too short issues nothing either.
    site.configure(token_secret="short")
    assert session.rest("GET", TOKEN_ROUTE).status == 503
    assert site.php_problems() == []
