#!/usr/bin/env bash
# Cost of the mirror scrub (issue 16): the same delta backup with --scrub-cycle 0 (off), 64 (the default:
# 1/64 of the unchanged blocks re-read and checked per run) and 1 (every unchanged block, for scale).
#
#   bench/scrub.sh                   # 1 GiB image-like file, 1 % of blocks changed, 7 runs each
#   SIZE=$((4<<30)) RUNS=5 bench/scrub.sh
#   BENCH_DIR=/somewhere bench/scrub.sh   (default /var/tmp/backupd-bench-scrub; needs ~4x SIZE free)
#
# Inputs from bench/make_images.py (fixed seed, as bench/delta.sh). Each timed run resets the repository to
# one holding base.img (untimed prepare, with a sync), then backs up new.img: the page cache is warm, so the
# numbers show the scrub's CPU and read-syscall cost, not a cold disk's seeks.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RUNS=${RUNS:-7}
SIZE=${SIZE:-$((1 << 30))}
APPEND=${APPEND:-300000}
DIR=${BENCH_DIR:-/var/tmp/backupd-bench-scrub}

for tool in hyperfine python3; do
    command -v "$tool" >/dev/null || { echo "bench/scrub.sh: $tool is missing (apt-get install -y hyperfine python3)" >&2; exit 1; }
done

echo "== building backupd (Release, ReadyToRun) into bench/out" >&2
dotnet publish "$ROOT/src/Daemon/Daemon.csproj" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
    --artifacts-path "$HERE/out/.build" -o "$HERE/out" --nologo -v q >&2
BKD="$HERE/out/backupd"

mkdir -p "$DIR/src"
cd "$DIR"
if [[ ! -f gen.txt || "$(cat size.txt 2>/dev/null)" != "$SIZE:$APPEND" ]]; then
    echo "== generating inputs in $DIR" >&2
    rm -f base.img new.img
    python3 "$HERE/make_images.py" base.img new.img "$SIZE" "$APPEND" > gen.txt
    echo "$SIZE:$APPEND" > size.txt
fi

echo "== baseline repository (first backup of base, not timed)" >&2
rm -rf repo.base repo src/disk.img
cp --sparse=always base.img src/disk.img
"$BKD" backup --file src/disk.img --to repo.base >/dev/null
rm src/disk.img
cp --sparse=always new.img src/disk.img
sync
cat src/disk.img repo.base/groups/files/files/*/mirror > /dev/null   # warm the page cache alike for every variant

HF_ARGS=()
for cycle in 0 64 1; do
    HF_ARGS+=(--command-name "scrub-cycle $cycle" --prepare "rm -rf repo && cp -a --sparse=always repo.base repo && sync"
              "$BKD backup --file src/disk.img --to repo --scrub-cycle $cycle --json > last-$cycle.json")
done
echo "== timing ($RUNS runs each)" >&2
hyperfine --runs "$RUNS" --style basic --export-json times.json "${HF_ARGS[@]}" >&2

python3 - <<'PY'
import json
runs = {r["command"]: r for r in json.load(open("times.json"))["results"]}
base = runs["scrub-cycle 0"]
print("| scrub-cycle | blocks checked | median s | min s | max s | vs off | CPU s (user+sys) | CPU vs off |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for c in ["0", "64", "1"]:
    r = runs[f"scrub-cycle {c}"]; j = json.load(open(f"last-{c}.json"))
    cpu, bcpu = r["user"] + r["system"], base["user"] + base["system"]
    print(f"| {c} | {j['scrubbedBlocks']:,} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} | {r['median'] / base['median']:.3f}x "
          f"| {cpu:.2f} | {cpu / bcpu:.3f}x |")
PY
