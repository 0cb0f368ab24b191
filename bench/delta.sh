#!/usr/bin/env bash
# Delta-transfer benchmark (issue 3): backupd's delta backup vs rsync --inplace, rdiff, cp and cat.
#
#   bench/delta.sh                 # 2 GiB image-like file, 5 runs each, plus the 64 GiB sparse memory run
#   RUNS=7 bench/delta.sh          # more runs
#   SKIP_SPARSE=1 bench/delta.sh   # only the 2 GiB comparison
#   BENCH_DIR=/somewhere bench/delta.sh   (default /var/tmp/backupd-bench; needs ~8 GiB free)
#
# Inputs (bench/make_images.py, fixed seed): base.img = 2 GiB, 64 KiB blocks, 60 % random data and
# 40 % holes; new.img = base with 1 % of the blocks rewritten (a quarter of them copies of other
# blocks: relocated clusters) and 300 000 bytes appended.
# Every tool turns base into new (each timed command runs as a whole process, page cache warm):
#   backupd  backup --file into a repository whose mirror holds base (reset before every run)
#   rsync    -I --no-whole-file --inplace onto a copy of base
#   rdiff    signature base + delta against it + patch base into a new file
#   cp       plain copy of new;  cat  new > /dev/null (the read floor)
# backupd additionally fsyncs its data and metadata before it returns (crash safety); the others do not.
# The machine may be shared: the CPU column (mean user+sys) is less sensitive to other load than wall time.
# Medians come from hyperfine (--runs RUNS, prepare steps untimed, including a sync so no write-back
# from the reset disturbs the timed run); peak RSS (/usr/bin/time) and bytes written
# (/proc/PID/io write_bytes, i.e. page-cache bytes dirtied) from one extra instrumented run each.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RUNS=${RUNS:-5}
SIZE=${SIZE:-$((2 << 30))}
APPEND=${APPEND:-300000}
SPARSE_SIZE=${SPARSE_SIZE:-$((64 << 30))}
DIR=${BENCH_DIR:-/var/tmp/backupd-bench}

for tool in hyperfine rsync rdiff python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/delta.sh: $tool is missing (apt-get install hyperfine rsync rdiff time python3)" >&2; exit 1; }
done

echo "== building backupd (Release, ReadyToRun) into bench/out" >&2
dotnet publish "$ROOT/src/Daemon/Daemon.csproj" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
    --artifacts-path "$HERE/out/.build" \
    -o "$HERE/out" --nologo -v q >&2
BKD="$HERE/out/backupd"

mkdir -p "$DIR/src"
cd "$DIR"
if [[ ! -f gen.txt || "$(cat size.txt 2>/dev/null)" != "$SIZE:$APPEND" ]]; then
    echo "== generating inputs in $DIR" >&2
    rm -f base.img new.img
    python3 "$HERE/make_images.py" base.img new.img "$SIZE" "$APPEND" > gen.txt
    echo "$SIZE:$APPEND" > size.txt
fi
CHANGED=$(sed -n 's/.*changed_bytes=\([0-9]*\).*/\1/p' gen.txt)

echo "== baseline repository (first backup of base, not timed)" >&2
rm -rf repo.base repo src/disk.img
cp --sparse=always base.img src/disk.img
"$BKD" backup --file src/disk.img --to repo.base >/dev/null
rm src/disk.img
cp --sparse=always new.img src/disk.img   # the new version, under the same name
sync

declare -A PREP CMD
NAMES=(backupd rsync rdiff cp cat)
PREP[backupd]="rm -rf repo && cp -a --sparse=always repo.base repo && sync"
CMD[backupd]="$BKD backup --file src/disk.img --to repo --json > last-backupd.json"
PREP[rsync]="cp --sparse=always base.img dest.img && sync"
CMD[rsync]="rsync -I --no-whole-file --inplace src/disk.img dest.img"
PREP[rdiff]="rm -f base.sig new.delta patched.img && sync"
CMD[rdiff]="rdiff signature base.img base.sig && rdiff delta base.sig src/disk.img new.delta && rdiff patch base.img new.delta patched.img"
PREP[cp]="rm -f copy.img && sync"
CMD[cp]="cp src/disk.img copy.img"
PREP[cat]="true"
CMD[cat]="cat src/disk.img > /dev/null"

cat src/disk.img > /dev/null   # warm the page cache for every tool alike
HF_ARGS=()
for n in "${NAMES[@]}"; do
    HF_ARGS+=(--command-name "$n" --prepare "${PREP[$n]}" "${CMD[$n]}")
done
echo "== timing ($RUNS runs each)" >&2
hyperfine --runs "$RUNS" --style basic --export-json times.json "${HF_ARGS[@]}" >&2

echo "== instrumented run per tool (peak RSS, bytes written)" >&2
for n in "${NAMES[@]}"; do
    bash -c "${PREP[$n]}"
    /usr/bin/time -f '%M' -o "rss-$n.txt" bash -c "${CMD[$n]}; awk '/^write_bytes/ {print \$2}' /proc/\$\$/io > written-$n.txt"
done
cp last-backupd.json backupd-result.json

python3 - "$CHANGED" <<'PY'
import json, sys
changed = int(sys.argv[1])
runs = {r["command"]: r for r in json.load(open("times.json"))["results"]}
ours = json.load(open("backupd-result.json"))
med = {n: r["median"] for n, r in runs.items()}
def num(path):
    return int(open(path).read().split()[0])
print(f"changed bytes (1 % of blocks + append): {changed:,}")
print(f"| tool | median s | min s | max s | tool / backupd | / cat | CPU s (user+sys) | bytes written | peak RSS MiB |")
print(f"|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in ["backupd", "rsync", "rdiff", "cp", "cat"]:
    r = runs[n]
    print(f"| {n} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} | {med[n] / med['backupd']:.2f}x | {med[n] / med['cat']:.2f}x "
          f"| {r['user'] + r['system']:.2f} | {num(f'written-{n}.txt'):,} | {num(f'rss-{n}.txt') / 1024:.0f} |")
print()
print(f"backupd: read {ours['bytesRead']:,} B, {ours['blocksChanged']} blocks changed, mirror data {ours['mirrorBytesWritten']:,} B "
      f"({ours['mirrorBytesWritten'] / changed:.3f}x changed), undo record {ours['undoBytesWritten']:,} B "
      f"({ours['undoBytesWritten'] / changed:.3f}x changed), total {ours['bytesWritten']:,} B")
print(f"targets: rsync/backupd {med['rsync'] / med['backupd']:.1f}x (>= 5), rdiff/backupd {med['rdiff'] / med['backupd']:.1f}x (>= 20), "
      f"backupd/cat {med['backupd'] / med['cat']:.2f}x (<= 3), peak RSS {num('rss-backupd.txt') / 1024:.0f} MiB (<= 150)")
PY

if [[ -z "${SKIP_SPARSE:-}" ]]; then
    echo
    echo "== 64 GiB sparse image (memory): first backup, then one with 64 changed blocks" >&2
    rm -rf sparse-repo sparse.img
    python3 - "$SPARSE_SIZE" <<'PY'
import random, sys
size = int(sys.argv[1]); rng = random.Random(7)
with open("sparse.img", "wb") as f:
    for _ in range(2048):                      # 128 MiB of data scattered over the image
        f.seek(rng.randrange(size // 65536) * 65536); f.write(rng.randbytes(65536))
    f.truncate(size)
PY
    /usr/bin/time -f '%e %M' -o sparse-1.txt "$BKD" backup --file sparse.img --to sparse-repo --json > sparse-1.json
    python3 - <<'PY'
import random
rng = random.Random(8)
with open("sparse.img", "r+b") as f:
    f.seek(0, 2); size = f.tell()
    for _ in range(64):
        f.seek(rng.randrange(size // 65536) * 65536); f.write(rng.randbytes(65536))
PY
    /usr/bin/time -f '%e %M' -o sparse-2.txt "$BKD" backup --file sparse.img --to sparse-repo --json > sparse-2.json
    /usr/bin/time -f '%e %M' -o sparse-v.txt "$BKD" verify --repository sparse-repo > /dev/null
    python3 - "$SPARSE_SIZE" <<'PY'
import json, sys
size = int(sys.argv[1])
print(f"64 GiB sparse image ({size:,} bytes, 128 MiB data):")
print("| run | wall s | peak RSS MiB | bytes read | bytes written | blocks changed |")
print("|---|---:|---:|---:|---:|---:|")
for name, j, t in [("first backup", "sparse-1.json", "sparse-1.txt"), ("64 blocks changed", "sparse-2.json", "sparse-2.txt")]:
    r = json.load(open(j)); wall, rss = open(t).read().split()
    print(f"| {name} | {float(wall):.2f} | {int(rss) / 1024:.0f} | {r['bytesRead']:,} | {r['bytesWritten']:,} | {r['blocksChanged']} |")
wall, rss = open("sparse-v.txt").read().split()
print(f"| verify (2 versions) | {float(wall):.2f} | {int(rss) / 1024:.0f} | | | |")
PY
    rm -f sparse.img
fi
