#!/usr/bin/env bash
# Install everything the tests need (Debian packages, a venv with the test extras), make sure
# MariaDB and Redis answer, then run the linters, the type checker, PHPUnit and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

step "Debian packages"
missing=()
command -v php >/dev/null || missing+=(php-cli)
{ command -v php >/dev/null && php -m | grep -qi '^mysqli$'; } || missing+=(php-mysql)
command -v phpunit >/dev/null || missing+=(phpunit)
[ -f /usr/share/wordpress/wp-settings.php ] || missing+=(wordpress)
command -v mariadb-admin >/dev/null || missing+=(mariadb-client)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v supervisord >/dev/null || missing+=(supervisor)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v openssl >/dev/null || missing+=(openssl)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v xgettext >/dev/null || missing+=(gettext)
command -v valgrind >/dev/null || missing+=(valgrind)  # bench/instructions.py
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "all present"
fi

step "Services"
if ! mariadb-admin --host=127.0.0.1 --user=root ping >/dev/null 2>&1; then
  echo "starting MariaDB"
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 60); do mariadb-admin --host=127.0.0.1 --user=root ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
mariadb-admin --host=127.0.0.1 --user=root ping
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.3; done
fi
echo "redis: $(redis-cli -h 127.0.0.1 ping)"

step "Python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'

step "ruff, mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

step "PHPUnit (wp-bridge)"
phpunit -c tests/php/phpunit.xml

step "pytest"
.venv/bin/python -m pytest "$@"
