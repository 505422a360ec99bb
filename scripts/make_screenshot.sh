#!/usr/bin/env bash
# Regenerate docs/report-screenshot.png: the HTML report of samples/, sorted by score,
# rendered by headless Chromium (Debian package `chromium`).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ganscreen scan samples/ --format html -o "$tmp/report.html" --fail-on never --no-progress
/usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/profile" --hide-scrollbars --window-size=1280,1800 \
  --screenshot="$tmp/shot.png" "file://$tmp/report.html#sort=score-desc" 2>/dev/null
python3 - "$tmp/shot.png" docs/report-screenshot.png <<'PY'
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").quantize(colors=192).save(sys.argv[2], optimize=True)
PY
ls -la docs/report-screenshot.png
