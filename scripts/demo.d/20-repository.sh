# demo: the versioned repository at file level: two versions of an image, only changed blocks written,
# the old version restored bit for bit (sparse, digest-checked), verify, and a damaged byte detected.
# Sourced by scripts/demo: uses backupd(), DEMO_STATE.

demo_files=$DEMO_STATE/files
demo_frepo=$DEMO_STATE/file-repository
rm -rf "$demo_files" "$demo_frepo"
mkdir -p "$demo_files"
# A 256 MiB raw image: 32 MiB of data at 0, 16 MiB at 128 MiB, holes elsewhere.
truncate -s 256M "$demo_files/template.raw"
head -c 32M /dev/urandom | dd of="$demo_files/template.raw" conv=notrunc status=none
head -c 16M /dev/urandom | dd of="$demo_files/template.raw" bs=1M seek=128 conv=notrunc status=none
cp --sparse=always "$demo_files/template.raw" "$demo_files/v1.raw"

echo "-- first backup (the whole file; holes are not read):"
backupd backup --file "$demo_files/template.raw" --to "$demo_frepo" --json
echo "-- change 3 blocks of 64 KiB and back up again: 3 blocks written"
for off in 1 700 2100; do head -c 64K /dev/urandom | dd of="$demo_files/template.raw" bs=64K seek=$off conv=notrunc status=none; done
backupd backup --file "$demo_files/template.raw" --to "$demo_frepo" --json
demo_first=$(ls "$demo_frepo/groups/files/points" | sort | head -1 | sed 's/\.json$//')
echo "-- restore the first version and compare with the original:"
backupd restore --repository "$demo_frepo" --file template.raw --point "$demo_first" --to "$demo_files/restored.raw"
cmp "$demo_files/restored.raw" "$demo_files/v1.raw" && echo "identical"
du -h --apparent-size "$demo_files/restored.raw"; du -h "$demo_files/restored.raw"
backupd verify --repository "$demo_frepo"
echo "-- damage one byte of the mirror: verify names the block (exit 5)"
printf '\x01' | dd of="$demo_frepo/groups/files/files/template.raw/mirror" bs=1 seek=$((5 * 65536 + 17)) conv=notrunc status=none
backupd verify --repository "$demo_frepo" || echo "verify exited with $?"
