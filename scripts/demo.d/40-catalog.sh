# demo: the catalog: backups recorded in PostgreSQL, list/show/status/verify, and restoring the demo VM's newest point
# Sourced by scripts/demo: uses backupd(), DEMO_VM, DEMO_STATE, DEMO_REPO, BACKUPD_CONFIG (its catalog-connection).

demo_catalog_repo=$DEMO_STATE/catalog-repo
demo_restore=$DEMO_STATE/restored-$(date -u +%Y%m%dT%H%M%SZ)

echo "-- backupd catalog migrate (the daemon also does this at start; safe to repeat and to race)"
backupd catalog migrate

echo "-- two live backups recorded in the catalog (the default with a configuration: the run holds the domain's advisory lock)"
backupd backup --domain "$DEMO_VM" --to "$demo_catalog_repo"
virsh -q qemu-monitor-command "$DEMO_VM" --hmp "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"write -P 0xe9 32M 4M\""
backupd backup --domain "$DEMO_VM" --to "$demo_catalog_repo"

if [ -e "$DEMO_REPO/repository.json" ]; then
  echo "-- backupd catalog rebuild --repository $DEMO_REPO (refreshes what the live-backup section recorded there; adds points written with --no-catalog)"
  backupd catalog rebuild --repository "$DEMO_REPO"
fi

echo "-- backupd list --domain $DEMO_VM"
backupd list --domain "$DEMO_VM"
demo_point=$(backupd list --domain "$DEMO_VM" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

echo "-- backupd show $demo_point"
backupd show "$demo_point"

echo "-- backupd status"
backupd status

echo "-- backupd verify --domain $DEMO_VM (re-reads every digest, records the result)"
backupd verify --domain "$DEMO_VM"

echo "-- backupd restore --domain $DEMO_VM --to $demo_restore (the newest point)"
backupd restore --domain "$DEMO_VM" --to "$demo_restore"
ls -l "$demo_restore"
qemu-img info "$demo_restore/vda.qcow2" | head -4
echo "-- the restored image holds the guest's data, including the write made between the two backups:"
qemu-io -r -f qcow2 -c 'read -P 0xab 0 16M' -c 'read -P 0x5a 64M 8M' -c 'read -P 0xe9 32M 4M' "$demo_restore/vda.qcow2"

echo "-- restoring again into the same directory is refused (exit 2), nothing is overwritten"
backupd restore --domain "$DEMO_VM" --to "$demo_restore" || echo "refused with exit $?"
