# demo: live backup of the running VM while the guest writes (snapshot -> copy -> active commit + pivot), then a crash and `backupd recover`
# Sourced by scripts/demo: uses backupd(), DEMO_VM, DEMO_DIR, DEMO_REPO, BACKUPD_CONFIG.

# qemu-io inside the running QEMU (HMP), on vda's virtio device: what the guest would do. qemu-io prints
# its result into QEMU's log, so a check reads the log's last lines.
demo_qemu_io() {
  local reply
  reply=$(virsh -q qemu-monitor-command "$DEMO_VM" --hmp "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"$1\"")
  if [ -n "$reply" ]; then echo "qemu-io '$1' failed: $reply" >&2; return 1; fi
}
demo_guest_log() { sleep 0.5; tail -n "$1" "/var/log/libvirt/qemu/$DEMO_VM.log"; }

# The "guest" writes 1 MiB blocks of 0xc7 from 128 MiB on, during the whole backup.
demo_guest_writer() {
  for i in $(seq 0 47); do demo_qemu_io "write -P 0xc7 $((128 + i))M 1M"; done
}
demo_guest_writer &
demo_writer=$!
backupd backup --domain "$DEMO_VM" --to "$DEMO_REPO" --quiesce preferred --json >"$DEMO_STATE/live-backup.json"
wait "$demo_writer"
python3 - "$DEMO_STATE/live-backup.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"run {r['runId']}: {r['outcome']}, {r['consistency']}, restore point {r['restorePointId']}")
print(f"copy {r['copyTime']} s, overlay lifetime {r['overlayLifetime']} s, commit {r['commitTime']} s")
for d in r['disks']:
    print(f"  {d['target']}: files {[f['fileKey'] for f in d['files']]}, read {d['bytesRead']} B, written {d['bytesWritten']} B, back on base: {d['backOnBase']}")
for s in r['skipped']:
    print(f"  skipped {s['target']}: {s['reason']}")
PY
demo_point=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["restorePointId"])' "$DEMO_STATE/live-backup.json")

echo "-- after the backup the VM runs on its base image again, no overlay is left:"
virsh domblklist "$DEMO_VM"
ls "$DEMO_DIR"
echo "-- every guest write is in the running disk:"
demo_qemu_io "read -P 0xc7 128M 48M"
demo_guest_log 2
echo "-- the copy holds the guest view at snapshot time:"
rm -f "$DEMO_STATE/vda-restored.qcow2"
backupd restore --repository "$DEMO_REPO" --point "$demo_point" --file vda.0 --to "$DEMO_STATE/vda-restored.qcow2"
qemu-io -r -f qcow2 -c 'read -P 0xab 0 16M' -c 'read -P 0x5a 64M 8M' "$DEMO_STATE/vda-restored.qcow2"

echo "-- now backupd dies (SIGKILL) in the middle of the copy: the VM is left on the overlay"
BACKUPD_FAULT=mid-copy:kill backupd backup --domain "$DEMO_VM" --to "$DEMO_REPO" >/dev/null 2>&1 \
  || echo "backupd exited with $? (killed)"
virsh domblklist "$DEMO_VM"
demo_qemu_io "write -P 0xd8 200M 1M" # lands in the overlay
echo "-- backupd recover --dry-run, then backupd recover:"
backupd recover --dry-run
backupd recover
virsh domblklist "$DEMO_VM"
ls "$DEMO_DIR"
echo "-- the write made while backupd was dead is in the base:"
demo_qemu_io "read -P 0xd8 200M 1M"
demo_guest_log 2
