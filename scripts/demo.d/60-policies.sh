# demo: the daemon runs a policy every 5 seconds on the demo VM; restore points accumulate and retention (keep-last 3) removes old ones
# Sourced by scripts/demo: uses backupd(), DEMO_VM, DEMO_STATE, DEMO_REPO, BACKUPD_CONFIG (policies-directory $DEMO_STATE/policies.d).

demo_policies="$DEMO_STATE/policies.d"
mkdir -p "$demo_policies"
cat >"$demo_policies/demo.yaml" <<YAML
# Back the demo VM up every 5 seconds and keep the 3 newest restore points.
name: demo-every-5s
domains: [$DEMO_VM]
schedule: every 5s
quiesce: preferred
repository: $DEMO_REPO
retention:
  keep-last: 3
YAML

echo "-- a broken policy is reported with file, line, column and the expected form:"
printf 'name: broken\ndomains: [%s]\nschedul: daily 25:00\nrepository: /tmp/x\n' "$DEMO_VM" >"$DEMO_STATE/broken.yaml"
backupd policy check "$DEMO_STATE/broken.yaml" || echo "(exit $?)"

echo "-- backupd policy check: selected domains and the next fire times"
backupd policy check

echo "-- backupd daemon for 25 seconds (SIGTERM then: running backups still commit and pivot)"
# exec: $! must be the daemon itself, not a shell running the backupd() function (SIGTERM would not reach it).
(exec dotnet "$ROOT/artifacts/backupd/backupd.dll" daemon) >"$DEMO_STATE/daemon.log" 2>&1 &
demo_daemon=$!
sleep 25
kill -TERM "$demo_daemon"
wait "$demo_daemon" || true
if kill -0 "$demo_daemon" 2>/dev/null; then echo "daemon still running after SIGTERM" >&2; exit 1; fi
grep -E "in force|policy demo-every-5s: (restore point|pruned)|stopping" "$DEMO_STATE/daemon.log" | sed "s/^ */   /"

echo "-- what is left: retention kept the 3 newest restore points of $DEMO_VM"
backupd prune --dry-run
virsh domblklist "$DEMO_VM"
