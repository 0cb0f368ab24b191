# demo: offsite copy: an encrypted, compressed, deduplicating copy of a restore point (local target, e.g. a USB disk, then over SSH to an append-only `backupd serve`), verified, pruned by the side that may delete, and restored
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

# --- The same over SSH to an append-only server (the real sshd here, the user backupd-remote of scripts/setup-env as
# the storing host), and a prune by the side that holds the right to delete. Two keys, as an operator sets them up:
# the hypervisor's is forced to `serve --append-only`; the one allowed to delete stays off the hypervisors.
demo_ssh_home=/var/lib/backupd-remote
demo_ssh_dir=$DEMO_STATE/ssh
demo_ssh_serve=/tmp/backupd-demo-serve # this build, where backupd-remote can read it
demo_ssh_repo=$demo_ssh_home/demo-copies
demo_ssh_target=ssh://backupd-remote@127.0.0.1$demo_ssh_repo
demo_ssh_opts="-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
demo_ssh_forget_keys() { [ -f "$demo_ssh_home/.ssh/authorized_keys" ] && sed -i '/ backupd-demo-/d' "$demo_ssh_home/.ssh/authorized_keys"; return 0; }
demo_ssh_forget_keys
rm -rf "$demo_ssh_dir" "$demo_ssh_serve" "$demo_ssh_repo" "$DEMO_STATE/vda-from-ssh.qcow2" "$DEMO_STATE/vda-local.qcow2"
mkdir -p "$demo_ssh_dir" "$demo_ssh_home/.ssh"
cp -r "$ROOT/artifacts/backupd" "$demo_ssh_serve" && chmod -R a+rX "$demo_ssh_serve"
for demo_kind in append-only writable; do
  ssh-keygen -q -t ed25519 -N '' -C "backupd-demo-$demo_kind" -f "$demo_ssh_dir/$demo_kind"
  demo_opt=$([ "$demo_kind" = append-only ] && echo " --append-only" || true)
  echo "command=\"dotnet $demo_ssh_serve/backupd.dll serve --repository $demo_ssh_repo$demo_opt\",restrict $(cat "$demo_ssh_dir/$demo_kind.pub")" \
    >>"$demo_ssh_home/.ssh/authorized_keys"
done
chown -R backupd-remote: "$demo_ssh_home/.ssh" && chmod 700 "$demo_ssh_home/.ssh" && chmod 600 "$demo_ssh_home/.ssh/authorized_keys"
demo_as() { BACKUPD_SSH="ssh -i $demo_ssh_dir/$1 $demo_ssh_opts" "${@:2}"; }

echo "-- a newer point (after a guest write), then both points copied over SSH with the hypervisor's append-only key"
demo_qemu_io "write -P 0x77 96M 1M"
demo_new_point=$(backupd backup --domain "$DEMO_VM" --to "$DEMO_REPO" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["restorePointId"])')
for demo_p in "$demo_copy_point" "$demo_new_point"; do
  demo_as append-only backupd copy --repository "$DEMO_REPO" --point "$demo_p" --to "$demo_ssh_target" --key "$demo_copy_key"
done
echo "-- prune through the append-only key is refused, nothing removed:"
if demo_as append-only backupd prune --target "$demo_ssh_target" --keep-last 1 --key "$demo_copy_key"; then
  echo "append-only server allowed a prune!"; exit 1
else
  echo "refused with exit $?"
fi
demo_as append-only backupd verify --target "$demo_ssh_target" --key "$demo_copy_key" | tail -n 1
echo "-- prune by the side that holds the right to delete (the key whose forced serve has no --append-only): keep the newest point"
demo_as writable backupd prune --target "$demo_ssh_target" --keep-last 1 --key "$demo_copy_key"
demo_as writable backupd verify --target "$demo_ssh_target" --read-data --key "$demo_copy_key" | tail -n 1
backupd list --domain "$DEMO_VM" --json | python3 -c '
import json, sys
copies = {p["id"]: p["copies"] for p in json.load(sys.stdin)}
old, new, target = sys.argv[1:4]
print(f"  catalog: {old} copied to {copies.get(old)}, {new} copied to {copies.get(new)}")
assert target not in copies.get(old, []) and target in copies[new]' "$demo_copy_point" "$demo_new_point" "$demo_ssh_target"

echo "-- backupd restore --from the SSH copy (the newest point), compared with the local restore"
demo_as append-only backupd restore --from "$demo_ssh_target" --point "$demo_new_point" --file vda.0 --to "$DEMO_STATE/vda-from-ssh.qcow2" --key "$demo_copy_key"
backupd restore --repository "$DEMO_REPO" --point "$demo_new_point" --file vda.0 --to "$DEMO_STATE/vda-local.qcow2" >/dev/null
cmp "$DEMO_STATE/vda-from-ssh.qcow2" "$DEMO_STATE/vda-local.qcow2" && echo "byte-identical to the local restore"
qemu-io -r -f qcow2 -c 'read -P 0x77 96M 1M' "$DEMO_STATE/vda-from-ssh.qcow2"
echo "-- the pruned point is gone from the copy:"
if demo_as append-only backupd restore --from "$demo_ssh_target" --point "$demo_copy_point" --file vda.0 --to "$DEMO_STATE/vda-gone.qcow2" --key "$demo_copy_key" 2>&1; then
  echo "a pruned point was restored!"; exit 1
else
  echo "not there (exit $?)"
fi
rm -f "$DEMO_STATE/vda-from-ssh.qcow2" "$DEMO_STATE/vda-local.qcow2" "$DEMO_STATE/vda-gone.qcow2"
demo_ssh_forget_keys
rm -rf "$demo_ssh_serve" "$demo_ssh_repo" "$demo_ssh_dir"
