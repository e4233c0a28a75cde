#!/usr/bin/env bash
# The WordPress bridge as a site installs it.
#
#   scripts/bridge-zip.sh OUTDIR      write OUTDIR/appointease-realtime-bridge-<version>.zip
#                                     (upload it under Plugins > Add New > Upload Plugin)
#   scripts/bridge-zip.sh --pot [FILE]
#                                     regenerate the translation template from the code
#                                     (default: the committed languages/appointease-realtime-bridge.pot)
#
# The version comes from the plugin header ("Version:"); APPOINTEASE_RT_VERSION, readme.txt's
# "Stable tag" and assets/realtime-client.js must say the same or nothing is built.
# Needs python3 (zipfile, in the standard library) and, for --pot, xgettext/msgcat (gettext).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SLUG="appointease-realtime-bridge"
PLUGIN="$ROOT/wp-bridge/$SLUG"
MAIN="$PLUGIN/$SLUG.php"
DOMAIN="appointease-realtime-bridge"

die() { printf 'bridge-zip: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: $0 OUTDIR | --pot [FILE]"; }

[ -f "$MAIN" ] || die "no plugin at $MAIN"

# The "Version:" line of the plugin header.
plugin_version() {
  sed -n 's/^[[:space:]]*\*[[:space:]]*Version:[[:space:]]*\([^[:space:]]*\)[[:space:]]*$/\1/p' "$MAIN" | head -n 1
}

check_versions() {
  local version="$1" constant stable js
  constant="$(sed -n "s/^define( 'APPOINTEASE_RT_VERSION', '\([^']*\)' );\$/\1/p" "$MAIN")"
  stable="$(sed -n 's/^Stable tag:[[:space:]]*\([^[:space:]]*\).*$/\1/p' "$PLUGIN/readme.txt" 2>/dev/null || true)"
  js="$(sed -n "s/^  const VERSION = '\([^']*\)';\$/\1/p" "$PLUGIN/assets/realtime-client.js")"
  [ "$constant" = "$version" ] || die "APPOINTEASE_RT_VERSION is '$constant', the header says '$version'"
  [ "$stable" = "$version" ] || die "readme.txt Stable tag is '$stable', the header says '$version'"
  [ "$js" = "$version" ] || die "assets/realtime-client.js VERSION is '$js', the header says '$version'"
}

# Header field of the plugin file (Plugin Name, Description...), for the .pot.
header_field() {
  sed -n "s/^[[:space:]]*\*[[:space:]]*$1:[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*\$/\1/p" "$MAIN" | head -n 1
}

po_quote() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }

make_pot() {
  local out="$1" version="$2" tmp
  command -v xgettext >/dev/null || die "xgettext is missing (apt-get install gettext)"
  command -v msgcat >/dev/null || die "msgcat is missing (apt-get install gettext)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  (
    cd "$PLUGIN"
    find . -name '*.php' -not -path '*/.*' -not -path './tests/*' | sed 's|^\./||' | LC_ALL=C sort >"$tmp/files"
    # -k alone drops xgettext's own PHP keywords (gettext, _...): only WordPress's count.
    xgettext --language=PHP --from-code=UTF-8 --files-from="$tmp/files" \
      --output="$tmp/code.pot" --add-comments=translators: --sort-by-file \
      --package-name="AppointEase Realtime Bridge" --package-version="$version" \
      --msgid-bugs-address="" \
      -k --keyword=__ --keyword=_e --keyword=_x:1,2c --keyword=_ex:1,2c \
      --keyword=_n:1,2 --keyword=_nx:1,2,4c \
      --keyword=esc_html__ --keyword=esc_html_e --keyword=esc_attr__ --keyword=esc_attr_e \
      --keyword=esc_html_x:1,2c --keyword=esc_attr_x:1,2c \
      --keyword=_n_noop:1,2 --keyword=_nx_noop:1,2,3c 2>"$tmp/xgettext.err"
  ) || die "xgettext failed: $(cat "$tmp/xgettext.err")"
  [ -s "$tmp/code.pot" ] || die "xgettext found no translatable strings"
  # What WordPress translates from the plugin header (as WP-CLI's make-pot adds them).
  {
    local field value
    for field in "Plugin Name" "Description" "Author"; do
      value="$(header_field "$field")"
      [ -n "$value" ] || continue
      printf '#. %s of the plugin\n#: %s.php\nmsgid "%s"\nmsgstr ""\n\n' \
        "$field" "$SLUG" "$(po_quote "$value")"
    done
  } >"$tmp/header.po"
  msgcat --use-first --output-file="$tmp/all.pot" "$tmp/code.pot" "$tmp/header.po" 2>"$tmp/err" ||
    die "msgcat failed: $(cat "$tmp/err")"
  sed -e 's/^"Content-Type: text\/plain; charset=CHARSET\\n"$/"Content-Type: text\/plain; charset=UTF-8\\n"/' \
    -e "s/^\"Language: \\\\n\"\$/\"Language: \\\\n\"\\n\"X-Domain: $DOMAIN\\\\n\"/" \
    -e 's/^# SOME DESCRIPTIVE TITLE\.$/# Translation template of AppointEase Realtime Bridge./' \
    -e "s/^# Copyright (C) YEAR THE PACKAGE'S COPYRIGHT HOLDER\$/# This file is distributed under the GPL-2.0-or-later license./" \
    -e '/^# This file is distributed under the same license as the/d' \
    -e '/^# FIRST AUTHOR <EMAIL@ADDRESS>, YEAR\.$/d' \
    "$tmp/all.pot" >"$tmp/final.pot"
  mkdir -p "$(dirname "$out")"
  mv "$tmp/final.pot" "$out"
}

make_zip() {
  local outdir="$1" version="$2" zip_path
  command -v python3 >/dev/null || die "python3 is missing"
  [ -d "$PLUGIN/languages" ] || die "no languages/ in $PLUGIN (the header's Domain Path)"
  [ -f "$PLUGIN/readme.txt" ] || die "no readme.txt in $PLUGIN"
  mkdir -p "$outdir" || die "cannot create $outdir"
  zip_path="$(cd "$outdir" && pwd)/$SLUG-$version.zip"
  python3 - "$PLUGIN" "$SLUG" "$zip_path" <<'PY' || die "could not write $zip_path"
import os
import sys
import zipfile

source, slug, target = sys.argv[1:4]
SKIP_DIRS = {"tests", "node_modules", "__pycache__"}
entries = []
for directory, dirs, files in os.walk(source):
    dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
    rel = os.path.relpath(directory, source)
    base = slug if rel == "." else f"{slug}/{rel.replace(os.sep, '/')}"
    entries.append((base + "/", None))
    for name in sorted(files):
        if name.startswith(".") or name.endswith(("~", ".swp", ".orig", ".rej")):
            continue
        entries.append((f"{base}/{name}", os.path.join(directory, name)))
tmp = target + ".part"
with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for arcname, path in entries:
        if path is None:
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o40755 << 16) | 0x10
            archive.writestr(info, b"")
        else:
            archive.write(path, arcname)
os.replace(tmp, target)
print(target)
PY
}

[ $# -ge 1 ] || usage
VERSION="$(plugin_version)"
[ -n "$VERSION" ] || die "no 'Version:' line in the header of $MAIN"

case "$1" in
  --pot)
    [ $# -le 2 ] || usage
    make_pot "${2:-$PLUGIN/languages/$DOMAIN.pot}" "$VERSION"
    ;;
  -h | --help) usage ;;
  -*) usage ;;
  *)
    [ $# -eq 1 ] || usage
    check_versions "$VERSION"
    make_zip "$1" "$VERSION"
    ;;
esac
