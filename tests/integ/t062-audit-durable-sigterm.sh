#!/usr/bin/env bash
# t062: in durable mode, SIGTERM under load loses no record: every request a client got
# an answer for is in the log, and the log ends with its signed final checkpoint. The
# queue is tiny so producers really block on it (backpressure) while the load runs.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
"$GATEWAYCTL" audit keygen --out "$T/audit" >/dev/null || fail "keygen"
write_config "$T/gw.conf"
sed -i "s|^audit = .*|audit = { path = \"$T/audit.log\"; mode = \"durable\"; queue = 16; fsync_batch = 8; signing_key = \"$T/audit.key\"; checkpoint_records = 50; };|" "$T/gw.conf"
start_gateway "$T/gw.conf"

# load TAG N: N keep-alive requests for unique paths, "status url" per line.
load() {
	local i
	for ((i = 0; i < $2; i++)); do
		printf 'url = "https://localhost:%s/public/%s-%d"\noutput = "/dev/null"\n' "$GW_PORT" "$1" "$i"
	done >"$T/urls-$1"
	gw_curl alice /public/start-"$1" -K "$T/urls-$1" -o /dev/null \
		-w '%{http_code} %{url_effective}\n' 2>/dev/null >"$T/load-$1"
}
pids=()
for tag in a b c d; do
	load "$tag" 4000 &
	pids+=($!)
done
# Stop in the middle of the load, once some hundreds of requests were answered.
for ((i = 0; i < 200; i++)); do
	[ "$(cat "$T"/load-* 2>/dev/null | wc -l)" -ge 600 ] && break
	sleep 0.05
done
kill -TERM "$GW_PID"
wait "$GW_PID"
check "gatewayd exits 0 after SIGTERM" 0 $?
wait "${pids[@]}"

answered=$(cat "$T"/load-* | awk '$1 != "000" { sub("https://localhost:[0-9]*", "", $2); print $2 }' | sort)
n_answered=$(echo "$answered" | grep -c .)
recorded=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["type"] == "request" and o["status"] == 200:
        print(o["path"])' "$T/audit.log" | sort)
missing=$(comm -23 <(echo "$answered") <(echo "$recorded") | wc -l)
echo "answered $n_answered, recorded $(echo "$recorded" | grep -c .)"
check "the load was cut by the stop" 1 "$([ "$n_answered" -ge 600 ] && [ "$n_answered" -lt 16004 ] && echo 1)"
check "every answered request has its record" 0 "$missing"
check "no request recorded twice" "" "$(echo "$recorded" | uniq -d | head -n 3)"
out=$("$GATEWAYCTL" audit verify "$T/audit.log" --pubkey "$T/audit.pub")
check "the log verifies, closed by its final checkpoint" 0 $?
check_contains "verify output" "OK:" "$out"
check_contains "last line is the final checkpoint" '"final":true' "$(tail -n 1 "$T/audit.log")"
finish
