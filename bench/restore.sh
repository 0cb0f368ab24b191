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
# Page cache warm for all alike (the repository and new.img are read once before timing); before every
# timed command the output is removed and `sync` run, so no write-back of an earlier run is timed.
# The machine may be shared and its disk is what an fsync waits for: the commands run in rounds (one of
# each per round, the order rotated), and the ratio column is the median over rounds of
# cp time / command time in the same round (throughput ratio: ≥ 0.9 for the newest point, ≥ 0.7 for the
# older one). Peak RSS and CPU from /usr/bin/time of every run. BASELINE_BKD=/path/to/older/backupd adds
# "(before)" rows for an older build in the same rounds.
# virtnbdbackup restore is not compared: it needs its own backup of a libvirt domain, not of a file.
# The first round's output of every command is compared with cmp against its source (byte-identical or the
# benchmark stops), and its allocated size against the source's (holes kept).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RUNS=${RUNS:-5}
SIZES=${SIZES:-"2 8"}
APPEND=${APPEND:-300000}
DIR=${BENCH_DIR:-/var/tmp/backupd-bench-restore}

for tool in python3 /usr/bin/time cmp; do
    command -v "$tool" >/dev/null || { echo "bench/restore.sh: $tool is missing (apt-get install time python3 diffutils)" >&2; exit 1; }
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
    python3 - "$gib" "$RUNS" "$BKD" "$OLD" "${BASELINE_BKD:-}" <<'PY'
import json, os, statistics, subprocess, sys, time
gib, runs, bkd, old, before = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
cmds = {"cp": (["bash", "-c", "cp --sparse=always new.img out.img && sync out.img"], "new.img")}
for label, exe in [("", bkd)] + ([(" (before)", before)] if before else []):
    cmds["newest" + label] = ([exe, "restore", "--repository", "repo", "--file", "disk.img", "--to", "out.img", "--json"], "new.img")
    cmds["older" + label] = ([exe, "restore", "--repository", "repo", "--file", "disk.img", "--point", old, "--to", "out.img", "--json"], "base.img")
names = list(cmds)
wall = {n: [] for n in names}; cpu = {n: [] for n in names}; rss = {n: 0 for n in names}; ratio = {n: [] for n in names}; alloc = {}; kernel = {}
for r in range(runs):
    order = names[r % len(names):] + names[:r % len(names)]   # rotate, so no command always follows the same one
    t = {}
    for n in order:
        cmd, want = cmds[n]
        if os.path.exists("out.img"): os.remove("out.img")
        subprocess.run(["sync"], check=True)
        start = time.monotonic()
        out = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", "rusage.txt"] + cmd, check=True, stdout=subprocess.PIPE).stdout
        t[n] = time.monotonic() - start
        m, u, s_ = open("rusage.txt").read().split()[-3:]
        rss[n] = max(rss[n], int(m)); cpu[n].append(float(u) + float(s_)); wall[n].append(t[n])
        if n != "cp":
            kernel[n] = json.loads(out)
        if r == 0:
            subprocess.run(["cmp", "out.img", want], check=True)   # byte-identical, or the benchmark stops
            alloc[n] = (os.stat("out.img").st_blocks * 512, os.stat(want).st_blocks * 512)
    for n in names:
        ratio[n].append(t["cp"] / t[n])
os.remove("out.img")
print(f"{gib} GiB image ({open('gen.txt').read().strip()}), {runs} rounds, commands rotated per round:")
print("| command | median s | min s | max s | CPU s (median) | throughput vs cp+fsync (median of same-round ratios) | peak RSS MiB | allocated / source allocated | cloned (or kernel-copied) / written |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for n in names:
    a, b = alloc[n]
    k = kernel.get(n)
    ck = "clonedBytes" if k and "clonedBytes" in k else "kernelCopiedBytes"   # (before): builds that used copy_file_range
    kw = f"{k.get(ck, '-'):,} / {k.get('writtenBytes', '-'):,}" if k and ck in k else "-"
    print(f"| {n} | {statistics.median(wall[n]):.3f} | {min(wall[n]):.3f} | {max(wall[n]):.3f} | {statistics.median(cpu[n]):.2f} | {statistics.median(ratio[n]):.2f} | {rss[n] / 1024:.0f} | {a / b:.3f} | {kw} |")
print(f"targets: newest >= 0.90 (is {statistics.median(ratio['newest']):.2f}), older >= 0.70 (is {statistics.median(ratio['older']):.2f}); load average {open('/proc/loadavg').read().split()[0]}")
print()
PY
    cd "$DIR"
done
