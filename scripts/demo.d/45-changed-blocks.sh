# demo: changed-block tracking: after guest writes the next backup reads only the dirty blocks (incremental), `backup --full` reads everything and checks the bitmap (safety net)
# Sourced by scripts/demo: uses backupd(), demo_qemu_io (30-live-backup.sh), DEMO_VM, DEMO_STATE, BACKUPD_CONFIG.

demo_cbt_repo=$DEMO_STATE/cbt-repo
rm -rf "$demo_cbt_repo"

# One line per disk from `backup --json`; fails the demo unless every disk was read in mode $2 ($3: "small" = far less than the disk).
demo_cbt_check() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); want, size_rule = sys.argv[2], sys.argv[3]
assert r["outcome"] == "succeeded", r
for d in r["disks"]:
    f = d["files"][0]
    print(f"  {d['target']}: {d['readMode']}, read {f['bytesRead']:,} B of a {f['virtualSize']:,} B disk"
          + (f" ({d['fullReadReason']})" if d.get("fullReadReason") else "")
          + (f", {f['cleanButChanged']} block(s) changed although the bitmap called them clean" if d["readMode"] == "safety-net" else ""))
    assert d["readMode"] == want, f"{d['target']} was read {d['readMode']}, expected {want}"
    if size_rule == "small":
        assert f["bytesRead"] * 8 < f["virtualSize"], "an incremental read should read far less than the disk"
    if want == "safety-net":
        assert f["cleanButChanged"] == 0
print(f"  restore point {r['restorePointId']}, overlay lifetime {r['overlayLifetime']} s")
PY
}

echo "-- first backup into a new repository: no earlier point, so the disk is read in full (and a checkpoint starts recording writes)"
backupd backup --domain "$DEMO_VM" --to "$demo_cbt_repo" --json >"$DEMO_STATE/cbt-1.json"
demo_cbt_check "$DEMO_STATE/cbt-1.json" full any
echo "-- the guest writes 2 MiB (0x3c at 150 MiB); the next backup reads only what the dirty bitmap marks"
demo_qemu_io "write -P 0x3c 150M 2M"
backupd backup --domain "$DEMO_VM" --to "$demo_cbt_repo" --json >"$DEMO_STATE/cbt-2.json"
demo_cbt_check "$DEMO_STATE/cbt-2.json" incremental small
demo_cbt_inc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["restorePointId"])' "$DEMO_STATE/cbt-2.json")
echo "-- backupd backup --full: everything read again and compared with what the bitmap said (the count must be 0)"
backupd backup --domain "$DEMO_VM" --to "$demo_cbt_repo" --full --json >"$DEMO_STATE/cbt-3.json"
demo_cbt_check "$DEMO_STATE/cbt-3.json" safety-net any

echo "-- backupd list: the read column"
backupd list --domain "$DEMO_VM" --since 10m
backupd list --domain "$DEMO_VM" --json | python3 -c '
import json, sys
modes = [p["readMode"] for p in json.load(sys.stdin) if p["repository"] == sys.argv[1]]
print("  read modes in", sys.argv[1], "newest first:", modes)
assert modes[:3] == ["safety-net", "incremental", "full"], modes' "$demo_cbt_repo"
echo "-- backupd show $demo_cbt_inc (the incremental point: per file mode and bytes read)"
backupd show "$demo_cbt_inc" | tail -n 2
echo "-- the incremental point restores to the guest view of its moment, the 2 MiB write included:"
rm -f "$DEMO_STATE/vda-cbt.qcow2"
backupd restore --repository "$demo_cbt_repo" --point "$demo_cbt_inc" --file vda.0 --to "$DEMO_STATE/vda-cbt.qcow2" >/dev/null
qemu-io -r -f qcow2 -c 'read -P 0xab 0 16M' -c 'read -P 0x3c 150M 2M' "$DEMO_STATE/vda-cbt.qcow2"
rm -f "$DEMO_STATE/vda-cbt.qcow2"
