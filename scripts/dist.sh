#!/usr/bin/env bash
# Build the release into dist/: the daemon's wheel and sdist, and the WordPress plugin zip.
# Usage: scripts/dist.sh [OUTDIR]   (default dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] && python=.venv/bin/python

echo "== daemon: wheel and sdist"
"$python" -m pip install --quiet --disable-pip-version-check 'build>=1.0'
rm -rf build daemon/*.egg-info
"$python" -m build --outdir "$out" .

echo "== WordPress plugin zip"
bash scripts/bridge-zip.sh "$out"

version="$("$python" -c 'import sys; sys.path.insert(0, "daemon"); import appointease_realtime as a; print(a.__version__)')"
echo "== release $version in $out/"
for file in "$out"/appointease_realtime-"$version"* "$out"/appointease-realtime-bridge-"$version".zip; do
  [ -f "$file" ] || { echo "missing: $file" >&2; exit 1; }
  printf '%s  %s bytes\n' "$(sha256sum "$file" | cut -c1-16)" "$(stat -c %s "$file")  $file"
done
