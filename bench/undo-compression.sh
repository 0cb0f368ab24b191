#!/usr/bin/env bash
# Undo-record compression (issue 15 item 4): the saving on two workloads, from `backup --file --json`
# (undoBytesWritten = on disk, undoBytesUncompressed = the same record as version 1).
#
#   bench/undo-compression.sh          (BENCH_DIR default /var/tmp/backupd-bench-undo; SKIP_BUILD=1 reuses bench/out)
#
# random  bench/make_images.py's 2 GiB image (bench/delta.sh's workload): random data, 1 % of blocks rewritten.
# system  an image-like file made of real system files (a tar of /usr/lib and /usr/share, 1 GiB at most, with
#         40 % holes between 64 KiB blocks as make_images.py lays them out), then 1 % of its 64 KiB blocks
#         rewritten with random data: the undo record holds old bytes of ordinary files, as an OS disk's would.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
DIR=${BENCH_DIR:-/var/tmp/backupd-bench-undo}
if [[ -z "${SKIP_BUILD:-}" ]]; then
    dotnet publish "$ROOT/src/Daemon/Daemon.csproj" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
        --artifacts-path "$HERE/out/.build" -o "$HERE/out" --nologo -v q >&2
fi
BKD="$HERE/out/backupd"
mkdir -p "$DIR"
cd "$DIR"

if [[ ! -f random-base.img ]]; then
    python3 "$HERE/make_images.py" random-base.img random-new.img $((2 << 30)) 300000 > random-gen.txt
fi
if [[ ! -f system-base.img ]]; then
    tar -cf - /usr/lib /usr/share 2>/dev/null | head -c $((1 << 30)) > system.tar || true
    python3 - <<'PY'
import random
BLOCK = 64 * 1024
rng = random.Random(20261202)
src = open("system.tar", "rb")
blocks = []
with open("system-base.img", "wb") as f:
    i = 0
    while True:
        chunk = src.read(BLOCK)
        if not chunk:
            break
        while rng.random() < 0.4:          # holes between data blocks, as in make_images.py
            i += 1
        f.seek(i * BLOCK); f.write(chunk); blocks.append(i); i += 1
    f.truncate(i * BLOCK)
import shutil
shutil.copyfile("system-base.img", "system-new.img")
with open("system-new.img", "r+b") as f:
    for b in rng.sample(blocks, max(1, len(blocks) // 100)):
        f.seek(b * BLOCK); f.write(rng.randbytes(BLOCK))
PY
    rm -f system.tar
fi

echo "| workload | image bytes | undo record on disk | uncompressed (version 1) | saving | backup s |"
echo "|---|---:|---:|---:|---:|---:|"
for w in random system; do
    rm -rf "repo-$w" src && mkdir src
    cp --sparse=always "$w-base.img" src/disk.img
    "$BKD" backup --file src/disk.img --to "repo-$w" --json > "$w-1.json"
    cp --sparse=always "$w-new.img" src/disk.img
    "$BKD" backup --file src/disk.img --to "repo-$w" --json > "$w-2.json"
    rm -rf src
    python3 - "$w" <<'PY'
import json, sys
w = sys.argv[1]
r = json.load(open(f"{w}-2.json"))
on, raw = r["undoBytesWritten"], r["undoBytesUncompressed"]
print(f"| {w} | {r['fileSize']:,} | {on:,} | {raw:,} | {100 * (1 - on / raw):.1f} % | {r['seconds']:.2f} |")
PY
done
