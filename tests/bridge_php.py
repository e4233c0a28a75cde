"""The bridge's PHP classes called from Python tests: one ``php`` process per batch of requests.

The class file is loaded on its own (``APPOINTEASE_RT_STANDALONE``, no WordPress); the requests
go in as a JSON list on stdin and the answers come back as a JSON list on stdout, one each.
Without a ``php`` binary the calling test is skipped, except with ``CI=true``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.conftest import need

INCLUDES = (
    Path(__file__).resolve().parent.parent
    / "wp-bridge"
    / "appointease-realtime-bridge"
    / "includes"
)

_HEAD = r"""
define('APPOINTEASE_RT_STANDALONE', true);
require $argv[1];
$out = [];
foreach (json_decode(stream_get_contents(STDIN), true) as $in) {
"""
_TAIL = r"""
}
echo json_encode($out, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
"""


def run_php(class_file: str, handler: str, requests: Sequence[dict[str, Any]]) -> list[Any]:
    """Load ``includes/<class_file>``, run ``handler`` (PHP that appends one answer to ``$out``
    for the request ``$in``) on each request, and return the answers in order."""
    php = shutil.which("php")
    if php is None:
        need("the php CLI", "not installed (apt-get install php-cli)")
    result = subprocess.run(
        [str(php), "-r", _HEAD + handler + _TAIL, str(INCLUDES / class_file)],
        input=json.dumps(list(requests)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    answers: list[Any] = json.loads(result.stdout)
    assert len(answers) == len(requests), result.stdout
    return answers
