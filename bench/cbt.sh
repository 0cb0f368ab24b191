#!/usr/bin/env bash
# Changed-block tracking side by side (issue 12, item 7): a live TCG VM (no OS) with DATA_MIB of data on one qcow2
# disk of each virtual size, CHANGE_PCT % of the data's 64 KiB blocks rewritten through the guest (HMP qemu-io into
# the running QEMU, so the checkpoints' bitmaps record them) between backups; then, on the same VM and the same change:
#   backupd inc   `backupd backup --domain VM --to REPO --json` (reads the changed-block plan)
#   virtnbdbackup `virtnbdbackup -d VM -l inc -o DIR` (pull-mode backup over NBD, its own checkpoints)
# and, after one more change of the same size, `backupd backup --full` (safety net: reads everything).
# The base image's pages are dropped from the page cache (posix_fadvise DONTNEED on that file only) before each run.
# Prints per run: wall s, bytes read from the source (backupd: its JSON bytesRead; virtnbdbackup: the rchar growth of
# the QEMU process that serves its NBD reads), bytes added to the repository/output (du -sb), overlay lifetime (backupd's
# JSON; virtnbdbackup has no overlay), peak RSS (/usr/bin/time); medians over ROUNDS rounds.
# Usage: bench/cbt.sh [SIZE_GIB ...]   (default 4 16 64)
#   env: DATA_MIB=1024 CHANGE_PCT=1 ROUNDS=3 BKD="dotnet path/to/backupd.dll" (default: a Release publish into bench/out)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(4 16 64)
DATA_MIB=${DATA_MIB:-1024}
CHANGE_PCT=${CHANGE_PCT:-1}
ROUNDS=${ROUNDS:-3}
for tool in virsh qemu-img qemu-io virtnbdbackup python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/cbt.sh: $tool is missing (apt-get install libvirt-clients qemu-utils virtnbdbackup python3 time)" >&2; exit 1; }
done
if [ -z "${BKD:-}" ]; then
  echo "== building backupd (Release) into bench/out" >&2
  dotnet publish "$ROOT/src/Daemon/Daemon.csproj" -c Release -r linux-x64 --self-contained false --artifacts-path "$HERE/out/.build" -o "$HERE/out" --nologo -v q >&2
  BKD="$HERE/out/backupd"
fi
$BKD backup --help 2>&1 | grep -q -- '--full' || { echo "bench/cbt.sh: this backupd has no 'backup --full' (changed-block tracking not in this build)" >&2; exit 1; }

VM=bkd-cbt-bench-$$
DIR=/var/lib/libvirt/images/bkd-tests/$VM
OUT=${BENCH_DIR:-/var/tmp/backupd-bench}/cbt-$$
V() { virsh -q -c qemu:///system "$@"; }
cleanup_vm() {
  V destroy "$VM" >/dev/null 2>&1 || true
  V undefine "$VM" --checkpoints-metadata >/dev/null 2>&1 || true
  rm -rf "$DIR" "$OUT/repo" "$OUT/vnb"
}
trap 'cleanup_vm; rm -rf "$OUT"' EXIT
io() { V qemu-monitor-command "$VM" --hmp "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"$1\"" >/dev/null; }
uncache() { python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$DIR/disk.qcow2"; }
qemu_rchar() { awk '/^rchar/ {print $2}' "/proc/$(cat "/run/libvirt/qemu/$VM.pid")/io"; }

# The data: DATA_MIB in 64 MiB extents spread evenly over the virtual disk, each its own pattern.
layout() { python3 - "$1" "$DATA_MIB" <<'PY'
import sys
size, data = int(sys.argv[1]) << 30, int(sys.argv[2]) << 20
n = max(1, data // (64 << 20)); step = (size // n) // (64 << 10) * (64 << 10)
for i in range(n): print(f"write -P {1 + i % 250} {i * step} 64M")
PY
}
# CHANGE_PCT % of the data's 64 KiB blocks, at random, new patterns (the same count for every disk size).
change() { python3 - "$1" "$DATA_MIB" "$CHANGE_PCT" "$RANDOM" <<'PY' | while read -r c; do io "$c"; done
import random, sys
size, data, pct, seed = int(sys.argv[1]) << 30, int(sys.argv[2]) << 20, float(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed); n = max(1, data // (64 << 20)); step = (size // n) // (64 << 10) * (64 << 10)
blocks = [i * step + b * (64 << 10) for i in range(n) for b in range(1024)]
for off in rng.sample(blocks, max(1, int(len(blocks) * pct / 100))): print(f"write -P {rng.randint(1, 254)} {off} 64k")
PY
}

ours() { # label [--full]; appends one TSV row
  local label=$1; shift
  uncache; local before; before=$(du -sb "$OUT/repo" 2>/dev/null | cut -f1 || echo 0)
  /usr/bin/time -f '%e %M' -o "$OUT/time" $BKD backup --domain "$VM" --to "$OUT/repo" --no-catalog --json "$@" >"$OUT/run.json"
  python3 - "$OUT/run.json" "$OUT/time" "$before" "$(du -sb "$OUT/repo" | cut -f1)" "$label" "$size" >>"$OUT/rows.tsv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); wall, rss = open(sys.argv[2]).read().split()[-2:]
read = sum(d.get("bytesRead", 0) for d in r["disks"])
modes = ",".join(sorted({f.get("readMode", "?") for d in r["disks"] for f in d["files"]}))
print(f"{sys.argv[6]}\t{sys.argv[5]}\t{wall}\t{read}\t{int(sys.argv[4]) - int(sys.argv[3])}\t{r.get('overlayLifetime') or 0}\t{int(rss) // 1024}\t{modes}")
PY
}
theirs() {
  uncache; local before r0; before=$(du -sb "$OUT/vnb" 2>/dev/null | cut -f1 || echo 0); r0=$(qemu_rchar)
  /usr/bin/time -f '%e %M' -o "$OUT/time" virtnbdbackup -d "$VM" -l "$1" -o "$OUT/vnb" >"$OUT/vnb.log" 2>&1
  read -r wall rss < <(tail -1 "$OUT/time")
  printf '%s\t%s\t%s\t%s\t%s\t-\t%s\t-\n' "$size" "virtnbdbackup -l $1" "$wall" $(( $(qemu_rchar) - r0 )) $(( $(du -sb "$OUT/vnb" | cut -f1) - before )) $((rss / 1024)) >>"$OUT/rows.tsv"
}

mkdir -p "$OUT"; : >"$OUT/rows.tsv"
for size in "${SIZES[@]}"; do
  echo "== ${size} GiB virtual, ${DATA_MIB} MiB data, ${CHANGE_PCT} % of its 64 KiB blocks changed per round" >&2
  cleanup_vm; mkdir -p "$DIR"
  qemu-img create -q -f qcow2 "$DIR/disk.qcow2" "${size}G"
  layout "$size" | while read -r c; do qemu-io -f qcow2 -c "$c" "$DIR/disk.qcow2" >/dev/null; done
  cat >"$DIR/dom.xml" <<XML
<domain type='qemu'><name>$VM</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/><source file='$DIR/disk.qcow2'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>
XML
  V define "$DIR/dom.xml" >/dev/null; V start "$VM" >/dev/null
  ours "first (full)" >/dev/null; theirs full
  for _ in $(seq "$ROUNDS"); do
    change "$size"
    ours "backupd inc"
    theirs inc
  done
  change "$size"; ours "backupd --full" --full
done

python3 - "$OUT/rows.tsv" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print("| virtual GiB | run | n | wall s | bytes read | bytes added | overlay s | peak RSS MiB | read mode |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
groups = {}
for r in rows: groups.setdefault((r[0], r[1]), []).append(r)
med = lambda g, i: statistics.median(float(x[i]) for x in g)
walls = {}
for (size, label), g in groups.items():
    walls[(size, label)] = med(g, 2)
    ov = "-" if g[0][5] == "-" else f"{med(g, 5):.2f}"
    print(f"| {size} | {label} | {len(g)} | {med(g, 2):.2f} | {med(g, 3):,.0f} | {med(g, 4):,.0f} | {ov} | {med(g, 6):.0f} | {g[0][7]} |")
sizes = sorted({s for s, _ in groups}, key=float)
for s in sizes:
    inc, vnb = walls.get((s, "backupd inc")), walls.get((s, "virtnbdbackup -l inc"))
    if inc and vnb: print(f"{s} GiB: virtnbdbackup -l inc / backupd inc = {vnb / inc:.2f}x (target >= 2)")
if len(sizes) > 1 and (sizes[0], "backupd inc") in walls and (sizes[-1], "backupd inc") in walls:
    print(f"backupd inc {sizes[-1]} GiB / {sizes[0]} GiB = {walls[(sizes[-1], 'backupd inc')] / walls[(sizes[0], 'backupd inc')]:.2f} (target <= 1.3)")
PY
