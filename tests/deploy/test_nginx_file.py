"""The shipped nginx file and its documentation stay one: docs/operations.md shows it whole."""

from __future__ import annotations

import re

from tests.deploy.conftest import POLLING_SWITCH, ROOT, SHIPPED_CONF

DOC = ROOT / "docs" / "operations.md"


def test_the_operations_doc_shows_the_shipped_file_as_it_is() -> None:
    blocks = re.findall(r"```nginx\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert SHIPPED_CONF.read_text() in blocks


def test_every_line_to_edit_is_marked_and_the_secrets_stay_out_of_the_log() -> None:
    text = SHIPPED_CONF.read_text()
    marked = [line.split("#")[0].strip() for line in text.splitlines() if "# EDIT" in line]
    assert marked == [
        "server 127.0.0.1:8080 max_fails=0;",
        "server 127.0.0.1:8081 max_fails=0;",
        "listen 443 ssl;",
        "server_name example.com;",
        "ssl_certificate     /etc/letsencrypt/live/example.com/fullchain.pem;",
        "ssl_certificate_key /etc/letsencrypt/live/example.com/privkey.pem;",
        "listen 127.0.0.1:8079;",
    ]
    assert POLLING_SWITCH in text  # off as shipped
    # Every server logs in the token-free format; none inherits the default one.
    servers = text.split("\nserver {")[1:]
    assert len(servers) == 2
    for server in servers:
        assert re.search(r"^    access_log \S+ appointease_realtime;$", server, re.MULTILINE)
