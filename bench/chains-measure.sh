#!/usr/bin/env bash
# Times `backupd chain shorten --depth 1` by commit and by pull on a 4-layer chain of a 1 GiB disk
# ([base: 1 GiB written] <- [sn1] <- [sn2] <- [cur], 128 MiB of writes each) on a running TCG VM,
# while the "guest" (qemu-io inside QEMU) keeps writing; prints each method's time and the guest's
# writes completed during the job (none would complete if the guest were stopped).
# Usage: bench/chains-measure.sh [path/to/backupd.dll]
set -euo pipefail
DLL=${1:-src/Daemon/bin/Debug/net10.0/backupd.dll}
VM=bkd-bench-$RANDOM
DIR=/var/lib/libvirt/images/bkd-tests/$VM
V() { virsh -q -c qemu:///system "$@"; }
cleanup() { V destroy "$VM" >/dev/null 2>&1 || true; V undefine --checkpoints-metadata "$VM" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT
io() { V qemu-monitor-command "$VM" --hmp "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"$1\"" >/dev/null; }

run() { # method
  cleanup; mkdir -p "$DIR"
  qemu-img create -q -f qcow2 "$DIR/base.qcow2" 1G
  qemu-io -f qcow2 -c 'write -P 0x11 0 1G' "$DIR/base.qcow2" >/dev/null
  cat >"$DIR/dom.xml" <<XML
<domain type='qemu'><name>$VM</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$DIR/base.qcow2'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>
XML
  V define "$DIR/dom.xml" >/dev/null; V start "$VM" >/dev/null
  local off=0
  for s in sn1 sn2 cur; do
    V snapshot-create-as --domain "$VM" "$s" --diskspec "vda,file=$DIR/$s.qcow2" --disk-only --atomic --no-metadata >/dev/null
    io "write -P 0x22 ${off}M 128M"; off=$((off + 256))
  done
  : >"$DIR/writes"
  ( i=0; while :; do io "write -P 0x33 $((900 + i % 100))M 64k" && date +%s.%N >>"$DIR/writes"; i=$((i + 1)); done ) &
  local writer=$!
  sleep 2
  local t0 t1
  t0=$(date +%s.%N)
  dotnet "$DLL" chain shorten --domain "$VM" --depth 1 --method "$1" --json >"$DIR/result.json"
  t1=$(date +%s.%N)
  sleep 1; kill "$writer"; wait "$writer" 2>/dev/null || true
  local during longest
  during=$(awk -v a="$t0" -v b="$t1" '$1>=a && $1<=b' "$DIR/writes" | wc -l)
  longest=$(awk -v a="$t0" -v b="$t1" '$1>=a && $1<=b {if (p) {g=$1-p; if (g>m) m=g} p=$1} END {printf "%.2f", m}' "$DIR/writes")
  python3 - "$DIR/result.json" "$1" "$during" "$longest" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["disks"][0]["result"]
print(f"{sys.argv[2]:6}: {r['seconds']:.1f} s job ({r['depthBefore']} -> {r['depthAfter']} images, active {r['active']}); "
      f"guest writes completed during it: {sys.argv[3]}, longest gap between two: {sys.argv[4]} s")
PY
}
run commit
run pull
