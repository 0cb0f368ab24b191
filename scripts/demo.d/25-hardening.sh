# demo: block devices, mirror rot healed by the next backup, a hostile repository refused, the key moved out of the repository.
# Sourced by scripts/demo: uses backupd(), DEMO_STATE, demo_files and demo_frepo (20-repository.sh).

echo "-- a 64 MiB loop device: its size comes from the device (BLKGETSIZE64), every byte is stored"
truncate -s 64M "$demo_files/loop.img"
head -c 8M /dev/urandom | dd of="$demo_files/loop.img" bs=1M seek=20 conv=notrunc status=none
demo_loop=$(losetup -f --show "$demo_files/loop.img")
backupd backup --file "$demo_loop" --to "$DEMO_STATE/device-repository" --json | grep -E '"(fileSize|bytesRead)"'
backupd restore --repository "$DEMO_STATE/device-repository" --file "$(basename "$demo_loop")" --to "$demo_files/loop-restored.img"
cmp "$demo_loop" "$demo_files/loop-restored.img" && echo "device and restored file are identical"
losetup -d "$demo_loop"

echo "-- the byte damaged above: verify listed it; the next backup re-checks it and rewrites it from the source"
backupd backup --file "$demo_files/template.raw" --to "$demo_frepo" --json | grep -E '"(healedBlocks|healing)"' || true
backupd verify --repository "$demo_frepo" && echo "verify: clean again"

echo "-- a hand-edited point document (a file key that is a path) is refused, nothing outside is touched (exit 5)"
demo_evil=$DEMO_STATE/evil-repository
rm -rf "$demo_evil"; cp -a "$demo_frepo" "$demo_evil"
demo_doc=$(ls "$demo_evil/groups/files/points/"*.json | head -1)
sed -i 's/"fileKey": *"template.raw"/"fileKey":"..\/..\/..\/outside"/' "$demo_doc"
backupd verify --repository "$demo_evil" --json || echo "verify exited with $?"

echo "-- keep the repository key outside the repository (host key directory; back it up separately!)"
export BACKUPD_KEY_DIRECTORY=$DEMO_STATE/keys
mkdir -p "$BACKUPD_KEY_DIRECTORY"; chmod 700 "$BACKUPD_KEY_DIRECTORY"
backupd key move-out --repository "$demo_frepo" --json
ls "$demo_frepo"
backupd verify --repository "$demo_frepo" && echo "verify with the key outside: clean"
unset BACKUPD_KEY_DIRECTORY
