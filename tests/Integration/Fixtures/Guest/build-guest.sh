#!/bin/bash
# Builds the minimal Linux test guest (issue 11) from Debian packages, without installing anything on the host:
#   build-guest.sh versions   prints "package=version" for every package the guest is made of (the cache key)
#   build-guest.sh build DIR  downloads and unpacks them and writes DIR/vmlinuz and DIR/initrd.gz
# The guest: busybox, qemu-ga with the libraries ldd lists, the virtio and ext4 modules, and an /init that
# mounts the data disk (/dev/vda, ext4) and runs a writer (file to a temporary name, rename, sync, manifest line,
# sync, "synced N" on the serial console). A second virtio port, org.backupd.control, takes test commands:
# "agent-stop" / "agent-cont" / "agent-kill" / "agent-start" (so a hung agent is a real SIGSTOPped qemu-ga).
set -euo pipefail
self=$(readlink -f "$0")

kernel_package() { apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}'; }
candidate() { apt-cache policy "$1" | awk '/Candidate:/ {print $2}'; }
PACKAGES() { echo "$(kernel_package) busybox-static qemu-guest-agent"; }

case "${1:-}" in
versions)
    for p in $(PACKAGES); do echo "$p=$(candidate "$p")"; done
    exit 0 ;;
build) out=$2 ;;
*) echo "usage: $0 versions | build DIR" >&2; exit 2 ;;
esac

work=$(mktemp -d "${out%/}.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir debs x root
(cd debs && apt-get download $(PACKAGES) >/dev/null 2>&1) || { echo "apt-get download $(PACKAGES) failed (network? apt-get update?)" >&2; exit 1; }
for d in debs/*.deb; do dpkg-deb -x "$d" x; done

kver=$(ls x/lib/modules | head -1)
cp x/boot/vmlinuz-"$kver" "$work/vmlinuz"

cd root
mkdir -p bin sbin proc sys dev data tmp run var/run lib/modules lib64 lib/x86_64-linux-gnu
cp ../x/bin/busybox bin/busybox
cp ../x/usr/sbin/qemu-ga sbin/qemu-ga
# qemu-ga's shared libraries, as the host's ldd resolves them (the host is the same Debian release).
for lib in $(ldd sbin/qemu-ga | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    mkdir -p ".$(dirname "$lib")"
    cp -L "$lib" ".$lib"
done
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk virtio_console crc16 mbcache jbd2 crc32c_generic ext4"
for m in $MODULES; do
    f=$(find ../x/lib/modules/"$kver" -name "$m.ko*" | head -1)
    [ -n "$f" ] || { echo "module $m not in the kernel package" >&2; exit 1; }
    cp "$f" lib/modules/"$m".ko
done

# qemu-ga's guest-shutdown runs /sbin/shutdown: stop the writer, unmount cleanly, power off.
cat > sbin/shutdown <<'SH'
#!/bin/sh
kill $(cat /run/writer.pid) 2>/dev/null
sleep 0.3
sync
umount /data && echo "data unmounted" > /dev/console
echo "powering off" > /dev/console
poweroff -f
SH

cat > init <<SH
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $MODULES; do insmod /lib/modules/\$m.ko; done
SH
cat >> init <<'SH'
# No udev: make the /dev/virtio-ports/NAME links ourselves, once the ports and the disk are there.
for i in $(seq 1 100); do [ -e /dev/vda ] && [ -n "$(ls /sys/class/virtio-ports 2>/dev/null)" ] && break; sleep 0.1; done
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/*; do ln -sf /dev/$(basename $p) /dev/virtio-ports/$(cat $p/name); done
AGENT=/dev/virtio-ports/org.qemu.guest_agent.0
start_agent() { qemu-ga -m virtio-serial -p $AGENT -t /run </dev/null >/dev/console 2>&1 & echo $! > /run/qemu-ga.pid; }
start_agent
mount -t ext4 /dev/vda /data || { echo "BOOT FAILED: cannot mount /dev/vda" > /dev/console; poweroff -f; }
echo "data mounted" > /dev/console

# The writer: a file is listed in the manifest only after it is complete and synced under its final name,
# so every manifest line of any consistent image names an intact file.
writer() {
    mkdir -p /data/files
    n=0; [ -f /data/manifest ] && n=$(wc -l < /data/manifest)
    while true; do
        n=$((n + 1))
        dd if=/dev/urandom of=/data/files/.tmp.$n bs=4096 count=8 2>/dev/null
        sum=$(sha256sum /data/files/.tmp.$n | cut -d' ' -f1)
        mv /data/files/.tmp.$n /data/files/f$n
        sync
        echo "f$n $sum" >> /data/manifest
        sync
        echo "synced $n" > /dev/console
        sleep 0.2
    done
}
writer & echo $! > /run/writer.pid

# Test control channel (absent on a drill clone without it: then just wait).
CONTROL=/dev/virtio-ports/org.backupd.control
while true; do
    if [ -e $CONTROL ] && read -r cmd < $CONTROL; then
        case "$cmd" in
        agent-stop) kill -STOP $(cat /run/qemu-ga.pid); echo "control: agent stopped" > /dev/console ;;
        agent-cont) kill -CONT $(cat /run/qemu-ga.pid); echo "control: agent continued" > /dev/console ;;
        agent-kill) kill -KILL $(cat /run/qemu-ga.pid); echo "control: agent killed" > /dev/console ;;
        agent-start) start_agent; echo "control: agent started" > /dev/console ;;
        "") ;;
        *) echo "control: unknown '$cmd'" > /dev/console ;;
        esac
    else
        sleep 0.5
    fi
done
SH
chmod +x init sbin/shutdown
find . | ../x/bin/busybox cpio -o -H newc 2>/dev/null | gzip -6 > "$work/initrd.gz"  # busybox's cpio: no host package
cd "$work"
mkdir -p "$out"
mv vmlinuz initrd.gz "$out"/
"$self" versions > "$out"/versions
echo "guest built in $out: $(du -h "$out"/initrd.gz | cut -f1) initrd, kernel $kver"
