#!/usr/bin/env bash
# t063: logrotate under load (rename, then SIGUSR1) twice: no record is lost or written
# twice, each rotated file ends with a signed final checkpoint, the next one opens by
# naming the previous chain value, and the series verifies as a whole and file by file.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
"$GATEWAYCTL" audit keygen --out "$T/audit" >/dev/null || fail "keygen"
write_config "$T/gw.conf"
sed -i "s|^audit = .*|audit = { path = \"$T/audit.log\"; signing_key = \"$T/audit.key\"; checkpoint_records = 200; };|" "$T/gw.conf"
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
answered_count() {
	cat "$T"/load-* 2>/dev/null | wc -l
}
pids=()
for tag in a b c; do
	load "$tag" 1500 &
	pids+=($!)
done
# Each rotation waits for its share of answers, up to 30 s (a loaded CI machine answers
# the 1 200 requests a rotation waits for in well under that; 10 s was once too short).
for r in 1 2; do
	for ((i = 0; i < 600; i++)); do
		[ "$(answered_count)" -ge $((r * 1200)) ] && break
		sleep 0.05
	done
	mv "$T/audit.log" "$T/audit.$r.log"
	kill -USR1 "$GW_PID"
done
wait "${pids[@]}"
stop_pid "$GW_PID"

series=("$T/audit.1.log" "$T/audit.2.log" "$T/audit.log")
for f in "${series[@]}"; do
	check "$(basename "$f") has records" 1 "$([ "$(grep -c '"type":"request"' "$f")" -gt 100 ] && echo 1)"
	check_contains "$(basename "$f") ends with the final checkpoint" '"final":true' "$(tail -n 1 "$f")"
	"$GATEWAYCTL" audit verify "$f" --pubkey "$T/audit.pub" >/dev/null
	check "$(basename "$f") verifies alone" 0 $?
done
check_contains "a rotated file opens with the previous chain value" '"reason":"reopen","prev":"' \
	"$(head -n 1 "$T/audit.2.log")"
out=$("$GATEWAYCTL" audit verify "${series[@]}" --pubkey "$T/audit.pub")
check "the series verifies" 0 $?
check_contains "all three files" "in 3 file(s)" "$out"
out=$("$GATEWAYCTL" audit verify "$T/audit.1.log" "$T/audit.log" --pubkey "$T/audit.pub")
check_contains "a missing middle file is a deletion" "record $(($(wc -l <"$T/audit.1.log") + 1)): deleted" "$out"

answered=$(cat "$T"/load-* | awk '$1 == "200" { sub("https://localhost:[0-9]*", "", $2); print $2 }' | sort)
recorded=$(cat "${series[@]}" | python3 -c '
import json, sys
for line in sys.stdin:
    o = json.loads(line)
    if o["type"] == "request" and o["status"] == 200:
        print(o["path"])' | sort)
check "every request answered" 4503 "$(echo "$answered" | grep -c .)"
check "every answered request recorded once" "$answered" "$recorded"
finish
