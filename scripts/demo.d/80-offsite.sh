# demo: offsite copy: an encrypted, compressed, deduplicating copy of a restore point (local target here, e.g. a USB disk; ssh://user@host/path works the same through `backupd serve`), verified and restored
# Sourced by scripts/demo: uses backupd(), DEMO_VM, DEMO_STATE, DEMO_REPO, BACKUPD_CONFIG (the catalog names the newest point).

# The newest point the catalog knows in the demo repository (earlier sections prune and forget some).
demo_copy_point=$(backupd list --domain "$DEMO_VM" --json 2>/dev/null | python3 -c 'import json,sys; print(next(p["id"] for p in json.load(sys.stdin) if p["repository"] == sys.argv[1]))' "$DEMO_REPO")
demo_copy_key=$DEMO_STATE/offsite.key
demo_copy_target=$DEMO_STATE/offsite-copy
rm -rf "$demo_copy_key" "$demo_copy_target" "$DEMO_STATE/vda-from-copy.qcow2"

echo "-- backupd key create: the offsite key (0600); without it no copy can be read by anyone"
backupd key create --to "$demo_copy_key"
backupd key export --paper --key "$demo_copy_key" >"$DEMO_STATE/offsite.paper"
rm -f "$DEMO_STATE/offsite.key.back"
backupd key import --paper "$DEMO_STATE/offsite.paper" --to "$DEMO_STATE/offsite.key.back"
cmp "$demo_copy_key" "$DEMO_STATE/offsite.key.back" && echo "paper backup ($(wc -l <"$DEMO_STATE/offsite.paper") lines) types back to the same key"
rm -f "$DEMO_STATE/offsite.paper" "$DEMO_STATE/offsite.key.back"

echo "-- backupd copy: the point's files read once, checked against their digests, chunked, zstd + AES-256-GCM, only missing chunks sent"
backupd copy --repository "$DEMO_REPO" --point "$demo_copy_point" --to "$demo_copy_target" --key "$demo_copy_key"
echo "-- the same point again: nothing to send"
backupd copy --repository "$DEMO_REPO" --point "$demo_copy_point" --to "$demo_copy_target" --key "$demo_copy_key"

echo "-- what the target holds (no plaintext, no domain XML): $(find "$demo_copy_target" -type f | wc -l) files, $(du -sh "$demo_copy_target" | cut -f1)"
if grep -rqa "<domain" "$demo_copy_target"; then echo "domain XML visible in the copy!"; exit 1; fi

echo "-- backupd verify --target --read-data: every index and chunk authenticated"
backupd verify --target "$demo_copy_target" --read-data --key "$demo_copy_key"

echo "-- backupd restore --from: streamed back, digest-checked, equal to the local restore"
backupd restore --from "$demo_copy_target" --point "$demo_copy_point" --file vda.0 --to "$DEMO_STATE/vda-from-copy.qcow2" --key "$demo_copy_key"
backupd restore --repository "$DEMO_REPO" --point "$demo_copy_point" --file vda.0 --to "$DEMO_STATE/vda-local.qcow2" >/dev/null
cmp "$DEMO_STATE/vda-from-copy.qcow2" "$DEMO_STATE/vda-local.qcow2" && echo "byte-identical to the local restore"
rm -f "$DEMO_STATE/vda-from-copy.qcow2" "$DEMO_STATE/vda-local.qcow2"
