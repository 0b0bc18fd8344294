#!/usr/bin/env bash
# Remakes docs/rulegraph.png and docs/report.png from a finished run in the current directory
# (e.g. after `make run`). Needs Debian's graphviz and chromium.
# Usage: bash docs/images.sh [category [subcategory [result]]]
set -euo pipefail
docs="$(cd "$(dirname "$0")" && pwd)"
category="${1:-Evaluation}" subcategory="${2:-All checkpoints}" result="${3:-metrics.png}"
snakemake --rulegraph | dot -Tpng -Gdpi=80 -o "$docs/rulegraph.png"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
snakemake --report "$work/report.html"
# The report is a single-page app without addresses: open one result by clicking through it.
python3 - "$work/report.html" "$category" "$subcategory" "$result" <<'PY'
import json, sys
path, *steps = sys.argv[1:]
*navigation, result = steps
script = """<script>
const click = (text) => [...document.querySelectorAll("a, li, button, span, div")].reverse()
  .find((element) => element.textContent.trim() === text)?.click();
const view = (name) => [...document.querySelectorAll("tr")]
  .find((row) => row.textContent.includes(name))?.querySelector("a")?.click();
%s.forEach((text, index) => setTimeout(() => click(text), 400 * (index + 1)));
setTimeout(() => view(%s), 2000);
</script>""" % (json.dumps(["Results", *navigation]), json.dumps(result))
html = open(path, encoding="utf-8").read()
head, tail = html.rsplit("</body>", 1)  # the page's own; the bundled scripts quote the tag too
open(path, "w", encoding="utf-8").write(head + script + "</body>" + tail)
PY
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,900 \
    --virtual-time-budget=8000 --screenshot="$docs/report.png" "file://$work/report.html"
