#!/usr/bin/env bash
# Diff raftkv's gateway answers against real etcd 3.4's, step by step.
# Usage: scripts/compat-diff.sh [OUT_DIR]   (needs etcd-server; uses ports 12379/12380 and 12479)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
out=${1:-$(mktemp -d)}
bin=${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}/release/raftkv
[ -x "$bin" ] || bin=${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}/debug/raftkv
mkdir -p "$out"
ETCD_FRESH=1 "$shared/etcd/etcd-start.sh" "$out/etcd" 12379 12380 >/dev/null
rm -rf "$out/raftkv"
"$bin" --data-dir "$out/raftkv" --listen-client-urls http://127.0.0.1:12479 --log-level warn >"$out/raftkv.log" 2>&1 &
pid=$!
trap '"$shared/etcd/etcd-stop.sh" "$out/etcd" >/dev/null 2>&1 || true; kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:12479/health >/dev/null && break; sleep 0.1; done
# The transcript stops at the first step whose answer it must parse; tolerate a failed lease
# grant so the later sections are compared too.
sed 's/    lid = r.json()\["ID"\]/    try:\n        lid = r.json()["ID"]\n    except Exception:\n        lid = "0"/' \
  "$shared/etcd/gw-transcript.py" >"$out/gw-transcript.py"
python3 "$out/gw-transcript.py" --url http://127.0.0.1:12379 --normalize >"$out/etcd.md"
python3 "$out/gw-transcript.py" --url http://127.0.0.1:12479 --normalize >"$out/raftkv.md"
python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
def steps(name):
    text = open(f"{out}/{name}.md").read()
    # Chunk sizes count the raw bytes, so they vary with the digits of run-specific ids.
    text = re.sub(r'\[chunk (\d+), \d+ bytes\]', r'[chunk \1]', text)
    parts = re.split(r'\n(?=### \d+\. )', text)[1:]
    return {int(re.match(r'### (\d+)\.', p).group(1)): (re.match(r'### \d+\. (.*)', p).group(1), re.split(r'\n## ', p)[0]) for p in parts}
e, r = steps("etcd"), steps("raftkv")
same = [k for k in e if r.get(k) == e[k]]
print(f"identical: {len(same)} / {len(e)} steps")
for k in sorted(e):
    if r.get(k) != e[k]:
        print(f"  differs: {k}. {e[k][0]}")
PY
echo "full transcripts: $out/etcd.md $out/raftkv.md"
