#!/usr/bin/env bash
# Offsite-copy benchmark (issue 15): `backupd copy` over SSH vs `restic backup` to an SFTP repository and
# `borg create` over SSH, all to the same host (this machine's sshd, user backupd-remote; scripts/setup-env).
#
#   bench/offsite.sh                      # 2 GiB image-like file: first copy, then an incremental (1 % changed)
#   SIZE=$((512<<20)) bench/offsite.sh    # smaller
#   BENCH_DIR=/somewhere bench/offsite.sh (default /var/tmp/backupd-offsite-bench; ~10 GiB free)
#   TOOLS=backupd bench/offsite.sh        # only some of the tools, run in this order (default: backupd restic borg;
#                                         # TOOLS="borg restic backupd" puts backupd last, after 2.6 GB written)
#   CONFIGURATION=Debug bench/offsite.sh  # the build measured (default Release)
#   SSH_CIPHERS=aes128-gcm@openssh.com bench/offsite.sh  # one cipher for all three tools (default: ssh's own choice)
#
# Inputs: bench/make_images.py (as bench/delta.sh): base.img 2 GiB, 60 % random 64 KiB blocks, 40 % holes;
# new.img = base with 1 % of the blocks rewritten and 300 000 bytes appended. Random data: compression
# cannot help anyone here, so the numbers compare chunking, dedup, crypto and transport.
# Each tool stores base, then new, into its own encrypted repository on the remote account:
#   backupd  `backup --file` into a local repository (untimed), then `copy --point` over ssh (timed)
#   restic   `restic backup` to sftp:..., repository v2 (zstd auto), password from RESTIC_PASSWORD
#   borg     `borg create --compression zstd,1` to ssh://..., repokey encryption
# Measured per step: wall seconds and peak RSS of the client (/usr/bin/time), bytes on the wire (ssh -v's
# "Transferred: sent N, received M" of every ssh the tool started), bytes stored (du -sb of the remote repository:
# file and directory sizes) and disk (du -s: blocks allocated, which counts each small file's last block whole).
# backupd's own per-step times (copy --json "stages") are printed after the table.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SIZE=${SIZE:-$((2 << 30))}
APPEND=${APPEND:-300000}
DIR=${BENCH_DIR:-/var/tmp/backupd-offsite-bench}
REMOTE_USER=backupd-remote
REMOTE_HOME=/var/lib/backupd-remote
RDIR=$REMOTE_HOME/bench-$$
CONFIGURATION=${CONFIGURATION:-Release}
TOOLS=${TOOLS:-backupd restic borg}

# The competitors are bench-only tools (no test needs them), so they are installed here, not by scripts/setup-env.
if ! command -v restic >/dev/null || ! command -v borg >/dev/null; then
  apt-get install -y restic borgbackup >/dev/null
fi
for tool in restic borg /usr/bin/time ssh; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y restic borgbackup time openssh-client"; exit 1; }
done
id "$REMOTE_USER" >/dev/null 2>&1 || { echo "no user $REMOTE_USER: run scripts/setup-env"; exit 1; }

mkdir -p "$DIR"
cd "$DIR"
rm -rf repo serve logs key* local-*; mkdir -p logs
if [ ! -f base.img ] || [ "$(stat -c %s base.img)" != "$SIZE" ]; then
  python3 "$HERE/make_images.py" base.img new.img "$SIZE" "$APPEND" > gen.txt
fi

# backupd for the remote user: this build, published as the other benchmarks measure it (ReadyToRun: no JIT
# warm-up in the timed copy), where that user can read it.
dotnet publish "$ROOT/src/Daemon/Daemon.csproj" -c "$CONFIGURATION" -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
  --artifacts-path "$DIR/.build" -o serve --nologo -v q >/dev/null
chmod -R a+rX "$DIR"; chmod a+rx "$(dirname "$DIR")" || true
BACKUPD="dotnet $DIR/serve/backupd.dll"

# A throwaway key pair for the three tools (no forced command: restic needs sftp, borg `borg serve`).
ssh-keygen -q -t ed25519 -N '' -C "bkd-bench-$$" -f key
mkdir -p "$REMOTE_HOME/.ssh"; cat key.pub >> "$REMOTE_HOME/.ssh/authorized_keys"
chown -R "$REMOTE_USER:" "$REMOTE_HOME/.ssh"; chmod 700 "$REMOTE_HOME/.ssh"; chmod 600 "$REMOTE_HOME/.ssh/authorized_keys"
mkdir -p "$RDIR"; chown "$REMOTE_USER:" "$RDIR"
cleanup() {
  sed -i "/bkd-bench-$$/d" "$REMOTE_HOME/.ssh/authorized_keys"
  rm -rf "$RDIR"
}
trap cleanup EXIT
cat > ssh-wrap <<WRAP
#!/bin/sh
exec ssh -E $DIR/logs/ssh.log -v -i $DIR/key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ${SSH_CIPHERS:+-o Ciphers=$SSH_CIPHERS} "\$@"
WRAP
chmod +x ssh-wrap
export BACKUPD_SSH="$DIR/ssh-wrap" BACKUPD_REMOTE_BACKUPD="$BACKUPD" BORG_RSH="$DIR/ssh-wrap"
export RESTIC_PASSWORD=bench-password BORG_PASSPHRASE=bench-password BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
HOST=$REMOTE_USER@127.0.0.1

# Untimed set-up: local backupd points of base and new, the offsite key, empty restic and borg repositories.
cp --sparse=always base.img disk.img
P1=$($BACKUPD backup --file disk.img --to repo --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pointId"])')
cp --sparse=always new.img disk.img
P2=$($BACKUPD backup --file disk.img --to repo --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pointId"])')
$BACKUPD key create --to "$DIR/key.offsite" >/dev/null
if [[ " $TOOLS " == *" restic "* ]]; then restic -q -r "sftp:$HOST:$RDIR/restic" -o sftp.command="$DIR/ssh-wrap $HOST -s sftp" init >/dev/null; fi
if [[ " $TOOLS " == *" borg "* ]]; then borg init -e repokey "ssh://$HOST$RDIR/borg" >/dev/null 2>&1; fi

wire() { # bytes sent+received by every ssh since the log was emptied
  grep -o 'Transferred: sent [0-9]*, received [0-9]*' logs/ssh.log | awk '{gsub(",","",$3); s+=$3+$5} END {print s+0}'
}
row() { # tool step command...
  local tool=$1 step=$2; shift 2
  cp --sparse=always "$([ "$step" = first ] && echo base.img || echo new.img)" disk.img
  sync; : > logs/ssh.log
  /usr/bin/time -f '%e %M' -o logs/time "$@" > "logs/$tool-$step.out" 2>&1 || { echo "$tool $step failed:"; cat "logs/$tool-$step.out"; exit 1; }
  read -r secs rss < logs/time
  local stored disk; stored=$(du -sb "$RDIR/$tool" | cut -f1); disk=$(du -s --block-size=1 "$RDIR/$tool" | cut -f1)
  printf '| %-7s | %-11s | %7.1f | %7.0f | %10s | %10s | %10s | %7.0f |\n' "$tool" "$step" "$secs" \
    "$(python3 -c "print($SIZE/$secs/2**20)")" "$(wire)" "$stored" "$disk" "$((rss / 1024))"
}
has() { [[ " $TOOLS " == *" $1 "* ]]; }

echo "| tool    | step        |       s | MiB/s*  | wire bytes | stored     | disk       | RSS MiB |"
echo "|---------|-------------|---------|---------|------------|------------|------------|---------|"
for step in first incremental; do
  point=$([ $step = first ] && echo "$P1" || echo "$P2")
  for tool in $TOOLS; do # in the order given: the one going first meets the freshest disk (see bench/README.md)
    case $tool in
      backupd) row backupd "$step" $BACKUPD copy --repository repo --point "$point" --to "ssh://$HOST$RDIR/backupd" --key "$DIR/key.offsite" --json ;;
      restic) row restic "$step" restic -q -r "sftp:$HOST:$RDIR/restic" -o sftp.command="$DIR/ssh-wrap $HOST -s sftp" backup disk.img ;;
      borg) row borg "$step" borg create --compression zstd,1 "ssh://$HOST$RDIR/borg::$step" disk.img ;;
    esac
  done
done
echo "* MiB/s: the image's size (${SIZE} bytes, holes included) over the wall time of the step"
if has backupd; then
  for step in first incremental; do
    python3 -c 'import json,sys; t=open(sys.argv[1]).read(); s=json.loads(t[t.rfind("\n{")+1:]).get("stages") or {}; print(sys.argv[2], " ".join(f"{k}={v}" for k,v in s.items()))' "logs/backupd-$step.out" "backupd $step stages:"
  done
  $BACKUPD verify --target "ssh://$HOST$RDIR/backupd" --key "$DIR/key.offsite" --read-data | tail -1
fi
