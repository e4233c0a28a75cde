"""The bridge's PHP signer and the Python ``standardwebhooks`` package agree.

PHP signs -> Python verifies, and Python signs -> PHP verifies, so the daemon
(which verifies with ``standardwebhooks``) accepts exactly what WordPress sends.
Without a ``php`` binary the tests are skipped, except with ``CI=true``.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.bridge_php import run_php

# One request per call: the answer to ``$in`` (sign, or verify) appended to ``$out``.
PHP_HANDLER = r"""
$signer = new AppointEase_RT_Signer($in['secret']);
if ($in['op'] === 'sign') {
    $out[] = ['signature' => $signer->sign($in['id'], $in['timestamp'], $in['body'])];
} else {
    $out[] = ['valid' => $signer->verify($in['headers'], $in['body'])];
}
"""


def _run_php(request: dict[str, object]) -> dict[str, object]:
    answer: dict[str, object] = run_php("class-signer.php", PHP_HANDLER, [request])[0]
    return answer


def _secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# A body with what real events carry: non-ASCII, slashes, nested objects.
BODY = json.dumps(
    {
        "type": "appointment.updated",
        "timestamp": "2026-03-01T09:00:00Z",
        "data": {
            "id": "APT-2026-000123",
            "previous": {"appointment_date": "2026-03-01 10:00:00", "employee_id": 3},
            "note": "Zoë / café",
        },
    },
    ensure_ascii=False,
    separators=(",", ":"),
)


def test_php_signs_python_verifies() -> None:
    secret = _secret()
    msg_id = "msg_" + secrets.token_hex(16)
    now = int(time.time())
    answer = _run_php(
        {"op": "sign", "secret": secret, "id": msg_id, "timestamp": now, "body": BODY}
    )
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "webhook-signature": str(answer["signature"]),
    }
    assert Webhook(secret).verify(BODY, headers)["data"]["id"] == "APT-2026-000123"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("000123", "000124"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(_secret()).verify(BODY, headers)


def test_python_signs_php_verifies() -> None:
    secret = _secret()
    msg_id = "msg_" + secrets.token_hex(16)
    now = datetime.now(tz=UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=now, data=BODY)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    ok = _run_php({"op": "verify", "secret": secret, "headers": headers, "body": BODY})
    assert ok == {"valid": True}

    rotated = dict(headers, **{"webhook-signature": f"v1,{'A' * 43}= {signature}"})
    ok = _run_php({"op": "verify", "secret": secret, "headers": rotated, "body": BODY})
    assert ok == {"valid": True}

    tampered = _run_php({"op": "verify", "secret": secret, "headers": headers, "body": BODY + " "})
    assert tampered == {"valid": False}

    wrong = _run_php({"op": "verify", "secret": _secret(), "headers": headers, "body": BODY})
    assert wrong == {"valid": False}


def test_both_reproduce_the_reference_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
    php = _run_php({"op": "sign", "secret": secret, "id": msg_id, "timestamp": ts, "body": body})
    python = Webhook(secret).sign(
        msg_id=msg_id, timestamp=datetime.fromtimestamp(ts, tz=UTC), data=body
    )
    assert php["signature"] == python == expected
