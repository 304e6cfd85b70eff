#!/bin/sh
# Look at a km3sim validation report in a real browser, without a server: headless Chromium
# opens the HTML file (its plots are embedded as data URIs) and saves a screenshot.
#
#   km3sim validate --sim productions/quickstart.yaml --data run.root --detector det.detx -o report.html
#   examples/screenshot_report.sh report.html report.png
#
# Needs Chromium (Debian/Ubuntu: apt-get install chromium). tests/validate/test_report.py runs
# the same check when chromium is installed.
set -eu
html=${1:?usage: $0 REPORT.html [SHOT.png] [HEIGHT]}
shot=${2:-${html%.html}.png}
height=${3:-4000}
exe=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$exe" ]; then
    echo "no Chromium found: apt-get install chromium" >&2
    exit 2
fi
url="file://$(cd "$(dirname "$html")" && pwd)/$(basename "$html")"
"$exe" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1300,"$height" \
    --screenshot="$shot" "$url" 2>/dev/null
echo "screenshot of $url written to $shot"
