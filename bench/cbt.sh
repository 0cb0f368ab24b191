#!/usr/bin/env bash
# Changed-block tracking side by side (issue 12, item 7): a live TCG VM (no OS) with DATA_MIB of data on one qcow2
# disk of each virtual size, CHANGE_PCT % of the data's 64 KiB blocks rewritten through the guest (HMP qemu-io into
# the running QEMU, so the checkpoints' bitmaps record them) between backups; then, on the same VM and the same change:
#   backupd inc   `backupd backup --domain VM --to REPO --json` (reads the changed-block plan)
#   virtnbdbackup `virtnbdbackup -d VM -l inc -o DIR` (pull-mode backup over NBD, its own checkpoints)
# and, after one more change of the same size, `backupd backup --full` (safety net: reads everything).
# virtnbdbackup refuses a domain with checkpoints it did not create ("Foreign checkpoint found"), so it backs up a
# twin: a second domain on a copy of the same image, given the same guest writes in the same order.
# A build without `backup --full` has changed-block tracking off (main before it was switched on): its rows are
# labelled "backupd (CBT off)" and read the whole file every time. BKD=... points at another build.
# The page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before each run, so the image is read cold as
# in the issue's table. Prints per run: wall s, bytes read from the source (backupd: its JSON bytesRead; virtnbdbackup:
# the rchar growth of the QEMU process that serves its NBD reads), bytes added to the repository/output (du -sb),
# overlay lifetime (backupd's JSON; virtnbdbackup has no overlay), peak RSS (/usr/bin/time), load average; medians
# over ROUNDS rounds. Targets printed: bytes read <= 1.2 x (dirty clusters + qcow2 metadata) (dirty: the changed
# 64 KiB blocks; metadata: the image's allocated bytes minus its data clusters, qemu-img map), overlay lifetime <=
# 0.5 s + the dirty bytes at the image's cold read rate (dd after a drop), inc 64 / 4 GiB <= 1.3, and
# virtnbdbackup -l inc / backupd inc >= 2.
# Usage: bench/cbt.sh [SIZE_GIB ...]   (default 4 16 64)
#   env: DATA_MIB=1024 CHANGE_PCT=1 ROUNDS=3 BKD="dotnet path/to/backupd.dll" (default: a Release publish into bench/out)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(4 16 64)
DATA_MIB=${DATA_MIB:-1024}
CHANGE_PCT=${CHANGE_PCT:-1}
ROUNDS=${ROUNDS:-3}
for tool in virsh qemu-img qemu-io virtnbdbackup python3 /usr/bin/time dd; do
  command -v "$tool" >/dev/null || { echo "bench/cbt.sh: $tool is missing (apt-get install libvirt-clients qemu-utils virtnbdbackup python3 time)" >&2; exit 1; }
done
[ -w /proc/sys/vm/drop_caches ] || { echo "bench/cbt.sh: run as root (it drops the page cache between runs)" >&2; exit 1; }
if [ -z "${BKD:-}" ]; then
  echo "== building backupd (Release) into bench/out" >&2
  dotnet publish "$ROOT/src/Daemon/Daemon.csproj" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true --artifacts-path "$HERE/out/.build" -o "$HERE/out" --nologo -v q >&2
  BKD="$HERE/out/backupd"
fi
if $BKD backup --help 2>&1 | grep -q -- '--full'; then CBT=1; INC="backupd inc"; else
  CBT=; INC="backupd (CBT off)"
  echo "bench/cbt.sh: this backupd has no 'backup --full': changed-block tracking is off in this build, every backup reads the whole file" >&2
fi

VM=bkd-cbt-bench-$$
TWIN=$VM-vnb
DIR=/var/lib/libvirt/images/bkd-tests/$VM
RESULTS=${BENCH_DIR:-/var/tmp/backupd-bench}
OUT=$RESULTS/cbt-$$
V() { virsh -q -c qemu:///system "$@"; }
cleanup_vm() {
  for d in "$VM" "$TWIN"; do
    V destroy "$d" >/dev/null 2>&1 || true
    V undefine "$d" --checkpoints-metadata >/dev/null 2>&1 || true
  done
  rm -rf "$DIR" "$OUT/repo" "$OUT/vnb"
}
trap 'cleanup_vm; rm -rf "$OUT"' EXIT
io() { for d in "$VM" "$TWIN"; do V qemu-monitor-command "$d" --hmp "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"$1\"" >/dev/null; done; }
uncache() { sync; echo 3 > /proc/sys/vm/drop_caches; }
qemu_rchar() { awk '/^rchar/ {print $2}' "/proc/$(cat "/run/libvirt/qemu/$TWIN.pid")/io"; }
load() { cut -d' ' -f1 /proc/loadavg; }
dirty() { cat "$OUT/dirty" 2>/dev/null || echo 0; }

# Bytes of the image that are not guest data clusters (header, L1/L2 tables, refcounts, bitmaps): every plan reads them.
metadata() { python3 - "$DIR/disk.qcow2" <<'PY'
import json, os, subprocess, sys
m = json.loads(subprocess.run(["qemu-img", "map", "-U", "--output=json", sys.argv[1]], check=True, capture_output=True).stdout)
data = sum(e["length"] for e in m if e.get("data") and e.get("depth", 0) == 0)
print(max(0, os.stat(sys.argv[1]).st_blocks * 512 - data))
PY
}

# The data: DATA_MIB in 64 MiB extents spread evenly over the virtual disk, each its own pattern.
layout() { python3 - "$1" "$DATA_MIB" <<'PY'
import sys
size, data = int(sys.argv[1]) << 30, int(sys.argv[2]) << 20
n = max(1, data // (64 << 20)); step = (size // n) // (64 << 10) * (64 << 10)
for i in range(n): print(f"write -P {1 + i % 250} {i * step} 64M")
PY
}
# CHANGE_PCT % of the data's 64 KiB blocks, at random, new patterns (the same count for every disk size); the dirty
# bytes (distinct blocks x 64 KiB, cluster-aligned) go to $OUT/dirty.
change() {
  python3 - "$1" "$DATA_MIB" "$CHANGE_PCT" "$RANDOM" "$OUT/dirty" <<'PY' | while read -r c; do io "$c"; done
import random, sys
size, data, pct, seed = int(sys.argv[1]) << 30, int(sys.argv[2]) << 20, float(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed); n = max(1, data // (64 << 20)); step = (size // n) // (64 << 10) * (64 << 10)
blocks = [i * step + b * (64 << 10) for i in range(n) for b in range(1024)]
picked = rng.sample(blocks, max(1, int(len(blocks) * pct / 100)))
open(sys.argv[5], "w").write(f"{len(picked) * (64 << 10)}\n")
for off in picked: print(f"write -P {rng.randint(1, 254)} {off} 64k")
PY
}

ours() { # label [--full]; appends one TSV row
  local label=$1; shift
  local meta; meta=$(metadata)
  uncache; local before; before=$(du -sb "$OUT/repo" 2>/dev/null | cut -f1 || echo 0)
  /usr/bin/time -f '%e %M' -o "$OUT/time" $BKD backup --domain "$VM" --to "$OUT/repo" --no-catalog --json "$@" >"$OUT/run.json"
  python3 - "$OUT/run.json" "$OUT/time" "$before" "$(du -sb "$OUT/repo" | cut -f1)" "$label" "$size" "$(dirty)" "$meta" "$(load)" >>"$OUT/rows.tsv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); wall, rss = open(sys.argv[2]).read().split()[-2:]
files = [f for d in r["disks"] for f in d.get("files", [])]
read = sum(f.get("bytesRead", 0) for f in files) or sum(d.get("bytesRead", 0) for d in r["disks"])
modes = ",".join(sorted({f.get("readMode", "?") for f in files}))
print("\t".join(map(str, [sys.argv[6], sys.argv[5], wall, read, int(sys.argv[4]) - int(sys.argv[3]), r.get("overlayLifetime") or 0, int(rss) // 1024, modes, sys.argv[7], sys.argv[8], sys.argv[9]])))
PY
}
theirs() {
  uncache; local before r0 l; before=$(du -sb "$OUT/vnb" 2>/dev/null | cut -f1 || echo 0); r0=$(qemu_rchar); l=$(load)
  /usr/bin/time -f '%e %M' -o "$OUT/time" virtnbdbackup -d "$TWIN" -l "$1" -o "$OUT/vnb" >"$OUT/vnb.log" 2>&1 || { cat "$OUT/vnb.log" >&2; exit 1; }
  read -r wall rss < <(tail -1 "$OUT/time")
  printf '%s\t%s\t%s\t%s\t%s\t-\t%s\t-\t%s\t0\t%s\n' "$size" "virtnbdbackup -l $1" "$wall" $(( $(qemu_rchar) - r0 )) \
    $(( $(du -sb "$OUT/vnb" | cut -f1) - before )) $((rss / 1024)) "$(dirty)" "$l" >>"$OUT/rows.tsv"
}

mkdir -p "$OUT"; : >"$OUT/rows.tsv"; : >"$OUT/rates"
for size in "${SIZES[@]}"; do
  echo "== ${size} GiB virtual, ${DATA_MIB} MiB data, ${CHANGE_PCT} % of its 64 KiB blocks changed per round" >&2
  cleanup_vm; mkdir -p "$DIR"
  qemu-img create -q -f qcow2 "$DIR/disk.qcow2" "${size}G"
  layout "$size" | while read -r c; do qemu-io -f qcow2 -c "$c" "$DIR/disk.qcow2" >/dev/null; done
  uncache   # the image's cold read rate, for the overlay target
  python3 -c 'import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY); t = time.monotonic(); n = 0
while (b := os.read(fd, 8 << 20)): n += len(b)
print(sys.argv[2], n / (time.monotonic() - t))' "$DIR/disk.qcow2" "$size" >>"$OUT/rates"
  cp --sparse=always "$DIR/disk.qcow2" "$DIR/twin.qcow2"
  for d in "$VM:disk" "$TWIN:twin"; do
    cat >"$DIR/${d#*:}.xml" <<XML
<domain type='qemu'><name>${d%%:*}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/><source file='$DIR/${d#*:}.qcow2'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>
XML
    V define "$DIR/${d#*:}.xml" >/dev/null; V start "${d%%:*}" >/dev/null
  done
  rm -f "$OUT/dirty"; ours "backupd first"; theirs full
  for _ in $(seq "$ROUNDS"); do
    change "$size"
    ours "$INC"
    theirs inc
  done
  if [ -n "$CBT" ]; then change "$size"; ours "backupd --full" --full; fi
done

cp "$OUT/rows.tsv" "$RESULTS/cbt-last-rows.tsv"
python3 - "$OUT/rows.tsv" "$OUT/rates" "$INC" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
rates = dict(l.split() for l in open(sys.argv[2]))
inc = sys.argv[3]
print("| virtual GiB | run | n | wall s | bytes read | target read: 1.2 x (dirty + metadata) | bytes added | overlay s | target overlay s | peak RSS MiB | read mode | load avg |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
groups = {}
for r in rows: groups.setdefault((r[0], r[1]), []).append(r)
med = lambda g, i: statistics.median(float(x[i]) for x in g)
walls = {}
for (size, label), g in groups.items():
    walls[(size, label)] = med(g, 2)
    dirty, meta, ours = med(g, 8), med(g, 9), g[0][5] != "-"
    tread = f"{1.2 * (dirty + meta):,.0f}" if ours and dirty else "-"
    ov = f"{med(g, 5):.2f}" if ours else "-"
    tov = f"{0.5 + dirty / float(rates[size]):.2f}" if ours and dirty else "-"
    print(f"| {size} | {label} | {len(g)} | {med(g, 2):.2f} | {med(g, 3):,.0f} | {tread} | {med(g, 4):,.0f} | {ov} | {tov} | {med(g, 6):.0f} | {g[0][7]} | {' '.join(x[10] for x in g)} |")
sizes = sorted({s for s, _ in groups}, key=float)
for s in sizes:
    a, b = walls.get((s, inc)), walls.get((s, "virtnbdbackup -l inc"))
    if a and b: print(f"{s} GiB: virtnbdbackup -l inc / {inc} = {b / a:.2f}x (target >= 2); image read cold at {float(rates[s]) / 1e6:,.0f} MB/s")
if len(sizes) > 1 and (sizes[0], inc) in walls and (sizes[-1], inc) in walls:
    print(f"{inc} {sizes[-1]} GiB / {sizes[0]} GiB = {walls[(sizes[-1], inc)] / walls[(sizes[0], inc)]:.2f} (target <= 1.3)")
PY
