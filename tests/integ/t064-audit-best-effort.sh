#!/usr/bin/env bash
# t064: best-effort mode with a one-record queue under parallel load: records are dropped
# instead of stalling, every drop is counted in an audit_drop record and in the metric,
# records + drops = requests, and the log (drop records included) still verifies.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
write_config "$T/gw.conf"
sed -i "s|^audit = .*|audit = { path = \"$T/audit.log\"; mode = \"best-effort\"; queue = 1; };\nadmin = { address = \"127.0.0.1:0\"; };|" "$T/gw.conf"
start_gateway "$T/gw.conf"
ADMIN=$(sed -n 's/^admin //p' "$T/gw.ready")

load() {
	local i
	for ((i = 0; i < $2; i++)); do
		printf 'url = "https://localhost:%s/public/%s-%d"\noutput = "/dev/null"\n' "$GW_PORT" "$1" "$i"
	done >"$T/urls-$1"
	gw_curl alice /public/start-"$1" -K "$T/urls-$1" -o /dev/null -w '%{http_code}\n' \
		2>/dev/null >"$T/load-$1"
}
pids=()
for tag in a b c d; do
	load "$tag" 800 &
	pids+=($!)
done
wait "${pids[@]}"
metric=$(curl -sS --max-time 5 "http://$ADMIN/metrics" | awk '$1 == "gateway_audit_dropped_total" { print $2 }')
stop_pid "$GW_PID"

check "every request answered" 3204 "$(cat "$T"/load-* | grep -c '^200$')"
read -r records drops ndrops < <(python3 -c '
import json, sys
r = d = n = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["type"] == "request":
        r += 1
    elif o["type"] == "audit_drop":
        d += o["count"]
        n += 1
print(r, d, n)' "$T/audit.log")
echo "records $records, dropped $drops in $ndrops drop records, metric $metric"
check "some records were dropped" 1 "$([ "$drops" -gt 0 ] && echo 1)"
check "records + drops = requests" 3204 "$((records + drops))"
check "drop records count what the metric counts" "$metric" "$drops"
"$GATEWAYCTL" audit verify "$T/audit.log" >/dev/null
check "the log with its drop records verifies" 0 $?
finish
