# demo: watching the daemon: with `http.listen` set it serves /metrics (Prometheus text) and the status page's JSON API; a scrape after the demo's backups
# Sourced by scripts/demo: uses DEMO_VM, DEMO_STATE, DEMO_REPO, BACKUPD_CONFIG, ROOT (the demo-every-5s policy of 60-policies.sh is still in policies.d).

# A free loopback port (not the default 9105: another daemon on this host may hold it).
demo_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'http:\n  listen: 127.0.0.1:%s\n' "$demo_port" >>"$BACKUPD_CONFIG"
echo "-- $BACKUPD_CONFIG now has:"
sed -n '/^http:/,$p' "$BACKUPD_CONFIG" | sed 's/^/   /'

echo "-- backupd daemon with the listener; the scrape waits for one more scheduled backup"
(exec dotnet "$ROOT/artifacts/backupd/backupd.dll" daemon) >"$DEMO_STATE/daemon-http.log" 2>&1 &
demo_daemon=$!
demo_stop() { kill -TERM "$demo_daemon" 2>/dev/null || true; wait "$demo_daemon" || true; }
trap demo_stop EXIT
for _ in $(seq 1 60); do
  grep -q "policy demo-every-5s: restore point" "$DEMO_STATE/daemon-http.log" && break
  kill -0 "$demo_daemon" 2>/dev/null || { cat "$DEMO_STATE/daemon-http.log" >&2; echo "the daemon exited" >&2; exit 1; }
  sleep 1
done
grep -q "policy demo-every-5s: restore point" "$DEMO_STATE/daemon-http.log" || { echo "no scheduled backup within 60 s" >&2; exit 1; }
grep -E "http: serving" "$DEMO_STATE/daemon-http.log" | sed "s/^ */   /"

echo "-- curl http://127.0.0.1:$demo_port/metrics (saved to docs/screenshots/metrics-after-demo.txt); the lines about $DEMO_VM:"
curl -fsS "http://127.0.0.1:$demo_port/metrics" >"$ROOT/docs/screenshots/metrics-after-demo.txt"
grep -E "^backupd_(last_success_timestamp_seconds|last_run_(succeeded|duration_seconds|read_bytes|written_bytes)|restore_points|repository_bytes|newest_point_consistency|overlay_left)\{domain=\"$DEMO_VM\"" \
  "$ROOT/docs/screenshots/metrics-after-demo.txt" | sed 's/^/   /'
grep -E '^backupd_(catalog_up|running_jobs|runs_total)' "$ROOT/docs/screenshots/metrics-after-demo.txt" | sed 's/^/   /'

echo "-- curl http://127.0.0.1:$demo_port/api/status (the status page's JSON, the CLI's --json names): $DEMO_VM"
curl -fsS "http://127.0.0.1:$demo_port/api/status" | python3 -c '
import json, sys
status = json.load(sys.stdin)
key = lambda d, name: next(v for k, v in d.items() if k.replace("_", "").lower() == name)
print(json.dumps({k: v for k, v in status.items() if not isinstance(v, list)}))
print("jobs running:", len(key(status, "jobs")))
print(json.dumps(next(d for d in key(status, "domains") if key(d, "name") == sys.argv[1]), indent=2))
' "$DEMO_VM" | sed 's/^/   /'

echo "-- SIGTERM: the daemon stops (a running backup still commits and pivots)"
trap - EXIT
demo_stop
if kill -0 "$demo_daemon" 2>/dev/null; then echo "daemon still running after SIGTERM" >&2; exit 1; fi
virsh domblklist "$DEMO_VM"
