#!/usr/bin/env bash
# Instant restore benchmark (issue 11 item 4): time to the first guest-agent answer of
#   instant   backupd restore --as-domain NEW --instant (NEW runs on overlays over the point, the data is pulled in meanwhile)
#   full      backupd restore --as-domain NEW (every byte copied and digest-checked) + virsh start NEW
# for the same point of a real TCG Linux guest (the integration tests' guest: kernel + initramfs with qemu-ga and a
# writer, tests/Integration/Fixtures/Guest/build-guest.sh) whose data disk is SIZE_MIB (default 1024) MiB, filled with
# FILL_MIB (default 900) MiB of random data, so a full restore moves ~1 GiB. Also: the guest's own boot (virsh start to
# agent answer) and, with DRILL=1 (default), the restore-drill RTO (`backupd drill`, overlays, its own measurement).
#
#   bench/instant-restore.sh                 # 3 rounds
#   RUNS=5 bench/instant-restore.sh
#   SKIP_BUILD=1 bench/instant-restore.sh    # reuse bench/out
#
# Method: one guest, one quiesced backup into a fresh repository and catalog database; then RUNS rounds, each running
# instant and full once (order alternating), each timed from the start of the backupd command to the first answer of
# guest-ping through `virsh qemu-agent-command` (polled every 0.2 s). For instant also the time until the command
# returned (NEW standalone: its pull finished). NEW is destroyed, undefined and deleted after each run, the page cache
# is left as it is (warm for both alike: the repository is read once before timing). Medians over rounds, and the
# ratio full / instant per round (median). The machine may be shared: the load average is printed with the table.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RUNS=${RUNS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
FILL_MIB=${FILL_MIB:-900}
DRILL=${DRILL:-1}
IMAGES=/var/lib/libvirt/images/bkd-bench-instant
VIRSH=(virsh -q -c qemu:///system)

for tool in virsh qemu-img mkfs.ext4 psql python3; do
    command -v "$tool" >/dev/null || { echo "bench/instant-restore.sh: $tool is missing (scripts/setup-env)" >&2; exit 1; }
done

if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "== building backupd (Release, ReadyToRun) into bench/out" >&2
    dotnet publish "$ROOT/src/Daemon/Daemon.csproj" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
        --artifacts-path "$HERE/out/.build" -o "$HERE/out" --nologo -v q >&2
fi
BKD="$HERE/out/backupd"

# The guest's kernel and initramfs: the tests' cache, else built (needs apt-get download, as the tests do).
GUEST_DIR=$(ls -d /var/cache/backupd-tests/guest-*/ 2>/dev/null | while read -r d; do [[ -f $d/initrd.gz ]] && echo "${d%/}"; done | tail -1)
if [[ -z "$GUEST_DIR" ]]; then
    GUEST_DIR=/var/cache/backupd-tests/guest-bench
    bash "$ROOT/tests/Integration/Fixtures/Guest/build-guest.sh" build "$GUEST_DIR" >&2
fi

RUN_ID=$$
VM=bkd-bench-$RUN_ID
WORK=$IMAGES/$VM
DB=bkd_bench_instant_$RUN_ID
export PGPASSWORD=backupd
PSQL=(psql -q -h 127.0.0.1 -U backupd -d backupd -v ON_ERROR_STOP=1)

cleanup() {
    for d in $("${VIRSH[@]}" list --all --name 2>/dev/null | grep -E "^($VM|bkd-bi-$RUN_ID-)" || true); do
        "${VIRSH[@]}" destroy "$d" >/dev/null 2>&1 || true
        "${VIRSH[@]}" undefine --checkpoints-metadata "$d" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
    "${PSQL[@]}" -c "drop database if exists \"$DB\"" >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p "$WORK/seed" "$WORK/state" "$WORK/policies.d"
"${PSQL[@]}" -c "create database \"$DB\""
cat >"$WORK/backupd.yaml" <<YAML
libvirt-uri: qemu:///system
catalog-connection: "Host=127.0.0.1;Username=backupd;Password=backupd;Database=$DB"
state-directory: $WORK/state
policies-directory: $WORK/policies.d
YAML
bkd() { "$BKD" --config "$WORK/backupd.yaml" "$@"; }

echo "== guest: ${SIZE_MIB} MiB data disk with ${FILL_MIB} MiB of random data" >&2
head -c "${FILL_MIB}M" /dev/urandom >"$WORK/seed/blob"
truncate -s "${SIZE_MIB}M" "$WORK/data.raw"
mkfs.ext4 -q -F -d "$WORK/seed" "$WORK/data.raw"
rm -rf "$WORK/seed"
qemu-img convert -O qcow2 "$WORK/data.raw" "$WORK/data.qcow2"
rm -f "$WORK/data.raw"
cat >"$WORK/domain.xml" <<XML
<domain type='qemu'>
  <name>$VM</name>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$GUEST_DIR/vmlinuz</kernel>
    <initrd>$GUEST_DIR/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet loglevel=3 panic=-1</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$WORK/data.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='$WORK/console.log'/><target port='0'/></serial>
    <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
  </devices>
</domain>
XML
"${VIRSH[@]}" define "$WORK/domain.xml" >/dev/null

now() { date +%s.%N; }
# Polls guest-ping until it answers; prints the seconds since $2.
agent_after() {
    local dom=$1 start=$2
    for _ in $(seq 1 3000); do
        if "${VIRSH[@]}" qemu-agent-command --timeout 2 "$dom" '{"execute":"guest-ping"}' >/dev/null 2>&1; then
            python3 -c "print(f'{$(now) - $start:.2f}')"
            return 0
        fi
        sleep 0.2
    done
    echo "the agent of $dom never answered" >&2
    return 1
}
remove() {
    "${VIRSH[@]}" destroy "$1" >/dev/null 2>&1 || true
    "${VIRSH[@]}" undefine --checkpoints-metadata "$1" >/dev/null 2>&1 || true
    rm -rf "${WORK:?}/$1"
}

t0=$(now)
"${VIRSH[@]}" start "$VM" >/dev/null
BOOT=$(agent_after "$VM" "$t0")
echo "== guest booted to its agent in $BOOT s; backing it up (quiesced)" >&2
bkd backup --domain "$VM" --to "$WORK/repo" --quiesce required --json >"$WORK/backup.json"
POINT=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['restorePointId'])" "$WORK/backup.json")
cat "$WORK/repo/groups"/*/files/*/mirror >/dev/null   # warm cache for both alike
# The source stops here: the restored domains keep its saved XML (--trust-saved-xml), serial log file included, which
# virtlogd holds open while the source runs ("Cannot open log file ... Device or resource busy").
"${VIRSH[@]}" destroy "$VM" >/dev/null

instant_run() { # name -> "agent standalone"
    local name=$1 t
    t=$(now)
    bkd restore --domain "$VM" --point "$POINT" --as-domain "$name" --instant --trust-saved-xml --images-dir "$WORK/$name" --json >"$WORK/$name.json" &
    local pid=$!
    local agent
    until "${VIRSH[@]}" domstate "$name" 2>/dev/null | grep -q running; do sleep 0.05; done
    agent=$(agent_after "$name" "$t")
    wait "$pid"
    local standalone
    standalone=$(python3 -c "print(f'{$(now) - $t:.2f}')")
    echo "$agent $standalone"
}
full_run() { # name -> "agent restore"
    local name=$1 t restored
    t=$(now)
    bkd restore --domain "$VM" --point "$POINT" --as-domain "$name" --trust-saved-xml --images-dir "$WORK/$name" --json >"$WORK/$name.json"
    restored=$(python3 -c "print(f'{$(now) - $t:.2f}')")
    "${VIRSH[@]}" start "$name" >/dev/null
    echo "$(agent_after "$name" "$t") $restored"
}

declare -a I_AGENT I_DONE F_AGENT F_RESTORE RATIO DRILLS
for r in $(seq 1 "$RUNS"); do
    echo "== round $r of $RUNS (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    for which in $( ((r % 2)) && echo "instant full" || echo "full instant"); do
        name=bkd-bi-$RUN_ID-$which-$r
        if [[ $which == instant ]]; then read -r a d < <(instant_run "$name"); I_AGENT+=("$a"); I_DONE+=("$d")
        else read -r a d < <(full_run "$name"); F_AGENT+=("$a"); F_RESTORE+=("$d"); fi
        remove "$name"
    done
    RATIO+=("$(python3 -c "print(f'{${F_AGENT[-1]} / ${I_AGENT[-1]}:.2f}')")")
    if [[ $DRILL == 1 ]]; then
        mkdir -p "$WORK/drills"
        bkd drill --domain "$VM" --point "$POINT" --trust-saved-xml --scratch-dir "$WORK/drills" --timeout 5m --json >"$WORK/drill.json" || true
        DRILLS+=("$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(f\"{j['rtoSeconds']:.2f}\" if j.get('passed') else 'failed')" "$WORK/drill.json")")
    fi
done

median() { python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:] if x!='failed']; print(f'{statistics.median(v):.2f}' if v else '-')" "$@"; }
echo
echo "instant restore vs full restore + boot: ${SIZE_MIB} MiB data disk (${FILL_MIB} MiB random data), TCG guest, $RUNS rounds, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %10s   %s\n' "measure" "median s" "per round"
printf '%-44s %10s   %s\n' "guest boot (virsh start -> agent answers)" "$BOOT" "(once)"
printf '%-44s %10s   %s\n' "instant: command start -> agent answers" "$(median "${I_AGENT[@]}")" "${I_AGENT[*]}"
printf '%-44s %10s   %s\n' "instant: command start -> standalone" "$(median "${I_DONE[@]}")" "${I_DONE[*]}"
printf '%-44s %10s   %s\n' "full: restore (copy + digest check)" "$(median "${F_RESTORE[@]}")" "${F_RESTORE[*]}"
printf '%-44s %10s   %s\n' "full: command start -> agent answers" "$(median "${F_AGENT[@]}")" "${F_AGENT[*]}"
printf '%-44s %10s   %s\n' "ratio full / instant (time to first answer)" "$(median "${RATIO[@]}")" "${RATIO[*]}"
[[ $DRILL == 1 ]] && printf '%-44s %10s   %s\n' "drill RTO (backupd drill, rtoSeconds)" "$(median "${DRILLS[@]}")" "${DRILLS[*]}"
