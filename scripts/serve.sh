#!/usr/bin/env bash
# Install the daemon into .venv and start it. With no DB_HOST configured it runs on the
# embedded SQLite database (appointease-realtime.sqlite3) with a few demo appointments.
# Extra arguments go to `appointease-realtime serve` (for example --port 8081).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e .
if [ -z "${DB_HOST:-}" ] && [ -z "${DB_SOCKET:-}" ] && ! grep -qsE '^DB_(HOST|SOCKET)=.' .env; then
  .venv/bin/appointease-realtime seed-demo
fi
exec .venv/bin/appointease-realtime serve "$@"
