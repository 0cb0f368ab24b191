# demo: disk image chains: build a 3-deep chain with external snapshots on the running VM, show it, shorten it live to one image while the guest writes
# Sourced by scripts/demo: uses backupd(), demo_qemu_io/demo_guest_log (30-live-backup.sh), DEMO_VM, DEMO_DIR.

echo "-- two external snapshots (the talk's recipe): [vda] <- [chain-sn1] <- [chain-cur]"
for s in chain-sn1 chain-cur; do
  virsh -q snapshot-create-as --domain "$DEMO_VM" "$s" --diskspec "vda,file=$DEMO_DIR/$s.qcow2" --disk-only --atomic --no-metadata
  demo_qemu_io "write -P 0x3c $((160 + ${#s}))M 4M"   # each layer gets data of its own
done
backupd chain show --domain "$DEMO_VM"

echo "-- the plan first (nothing changes), then the live active commit + pivot, while the guest keeps writing"
backupd chain shorten --domain "$DEMO_VM" --depth 1 --dry-run
demo_chain_writer() { for i in $(seq 0 15); do demo_qemu_io "write -P 0xd1 $((200 + i))M 1M"; done; }
demo_chain_writer &
demo_writer=$!
backupd chain shorten --domain "$DEMO_VM" --depth 1 --bandwidth 8M --delete-merged
wait "$demo_writer"

echo "-- one image again, in the live and the persistent definition; every write readable:"
virsh domblklist "$DEMO_VM"
virsh dumpxml --inactive "$DEMO_VM" | grep "source file"
demo_qemu_io "read -P 0xd1 200M 16M"
demo_guest_log 2
backupd chain show --domain "$DEMO_VM" --json | python3 -c 'import json,sys; d=json.load(sys.stdin)["domains"][0]["disks"][0]; print("depth", len(d["layers"]), "->", d["layers"][0]["path"])'
