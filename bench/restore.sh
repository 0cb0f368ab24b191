#!/usr/bin/env bash
# Restore benchmark (issue 12 item 8): backupd restore of the newest point (the mirror) and of an older
# point (mirror + one undo record) against `cp --sparse=always` + fsync of the same file, in one run.
#
#   bench/restore.sh                    # 2 GiB and 8 GiB images, 5 runs each
#   SIZES="2" RUNS=7 bench/restore.sh   # only 2 GiB, more runs
#   BENCH_DIR=/somewhere bench/restore.sh   (default /var/tmp/backupd-bench-restore; needs ~4x the sizes free)
#
# Inputs (bench/make_images.py, fixed seed): base.img = SIZE GiB, 64 KiB blocks, 60 % random data and
# 40 % holes; new.img = base with 1 % of the blocks rewritten and 300 000 bytes appended (a short last
# block). The repository holds two points: base (older, restored through the undo record) and new
# (newest, the mirror). Every timed command writes a fresh file and makes it durable:
#   cp        cp --sparse=always new.img out && sync out   (the reference: coreutils' fsync of the file)
#   newest    backupd restore --repository repo --file disk.img --to out        (digest checked)
#   older     backupd restore ... --point <base point> --to out                  (digest checked)
# Page cache warm for all alike (the repository and new.img are read once before timing); each prepare
# removes the output and syncs, so no write-back of an earlier run is timed. The machine may be shared:
# medians of hyperfine runs interleaved per round would be better, hyperfine runs each command's runs
# in a row, so rerun when the load changes. Ratio = cp median / backupd median (throughput ratio: ≥ 0.9
# for the newest point, ≥ 0.7 for the older one). Peak RSS (/usr/bin/time -v) from one extra run each.
# virtnbdbackup restore is not compared: it needs its own backup of a libvirt domain, not of a file.
# Every restored file is compared with cmp against its source, and the hole layout is printed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RUNS=${RUNS:-5}
SIZES=${SIZES:-"2 8"}
APPEND=${APPEND:-300000}
DIR=${BENCH_DIR:-/var/tmp/backupd-bench-restore}

for tool in hyperfine python3 /usr/bin/time cmp; do
    command -v "$tool" >/dev/null || { echo "bench/restore.sh: $tool is missing (apt-get install hyperfine time python3 diffutils)" >&2; exit 1; }
done

if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "== building backupd (Release, ReadyToRun) into bench/out" >&2
    dotnet publish "$ROOT/src/Daemon/Daemon.csproj" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
        --artifacts-path "$HERE/out/.build" -o "$HERE/out" --nologo -v q >&2
fi
BKD="$HERE/out/backupd"

mkdir -p "$DIR"
cd "$DIR"
for gib in $SIZES; do
    size=$((gib << 30))
    d="$DIR/$gib"
    mkdir -p "$d"
    cd "$d"
    if [[ ! -f gen.txt || "$(cat size.txt 2>/dev/null)" != "$size:$APPEND" ]]; then
        echo "== generating $gib GiB inputs in $d" >&2
        rm -f base.img new.img
        python3 "$HERE/make_images.py" base.img new.img "$size" "$APPEND" > gen.txt
        echo "$size:$APPEND" > size.txt
        rm -rf repo src
    fi
    if [[ ! -d repo ]]; then
        echo "== repository: base, then new (not timed)" >&2
        mkdir -p src
        cp --sparse=always base.img src/disk.img
        "$BKD" backup --file src/disk.img --to repo --json > backup-1.json
        rm src/disk.img
        cp --sparse=always new.img src/disk.img
        "$BKD" backup --file src/disk.img --to repo --json > backup-2.json
        rm src/disk.img
    fi
    OLD=$(python3 -c 'import json,sys; print(json.load(open("backup-1.json"))["pointId"])')
    cat new.img base.img > /dev/null
    find repo -type f -exec cat {} + > /dev/null   # warm the page cache for every command alike
    sync
    hyperfine --runs "$RUNS" --style basic --export-json times.json \
        --command-name cp --prepare "rm -f out.img && sync" "cp --sparse=always new.img out.img && sync out.img" \
        --command-name newest --prepare "rm -f out.img && sync" "$BKD restore --repository repo --file disk.img --to out.img" \
        --command-name older --prepare "rm -f out.img && sync" "$BKD restore --repository repo --file disk.img --point $OLD --to out.img" >&2
    for n in cp newest older; do
        rm -f out.img && sync
        case $n in
            cp) cmd=(bash -c "cp --sparse=always new.img out.img && sync out.img"); want=new.img ;;
            newest) cmd=("$BKD" restore --repository repo --file disk.img --to out.img); want=new.img ;;
            older) cmd=("$BKD" restore --repository repo --file disk.img --point "$OLD" --to out.img); want=base.img ;;
        esac
        /usr/bin/time -v -o "rss-$n.txt" "${cmd[@]}" > /dev/null
        cmp out.img "$want" || { echo "bench/restore.sh: $n restored a file that differs from $want" >&2; exit 1; }
        echo "$n: $(du -B1 out.img | cut -f1) bytes allocated, $want: $(du -B1 "$want" | cut -f1)" > "alloc-$n.txt"
    done
    rm -f out.img
    python3 - "$gib" <<'PY'
import json, re, sys
gib = sys.argv[1]
runs = {r["command"]: r for r in json.load(open("times.json"))["results"]}
size = 0
for line in open("gen.txt"):
    pass
def rss(n):
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"rss-{n}.txt").read()).group(1)) / 1024
cp = runs["cp"]["median"]
print(f"{gib} GiB image ({open('gen.txt').read().strip()}):")
print("| command | median s | min s | max s | CPU s (user+sys) | throughput ratio vs cp+fsync | peak RSS MiB | allocated |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for n in ["cp", "newest", "older"]:
    r = runs[n]
    alloc = open(f"alloc-{n}.txt").read().split(": ", 1)[1].strip()
    print(f"| {n} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} | {r['user'] + r['system']:.2f} | {cp / r['median']:.2f} | {rss(n):.0f} | {alloc} |")
print(f"targets: newest >= 0.90 (is {cp / runs['newest']['median']:.2f}), older >= 0.70 (is {cp / runs['older']['median']:.2f})")
print()
PY
    cd "$DIR"
done
