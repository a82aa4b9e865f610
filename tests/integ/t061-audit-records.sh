#!/usr/bin/env bash
# t061: 1000 requests of mixed outcomes (allowed, 401, 403, 404) plus refused handshakes give
# exactly one record each with every field, no credential text; `audit verify` passes on
# the log and names the exact record for each kind of damage done to a copy.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
"$GATEWAYCTL" audit keygen --out "$T/audit" >/dev/null || fail "keygen"
"$GATEWAYCTL" audit keygen --out "$T/other" >/dev/null || fail "keygen other"
ROUTES='{ prefix = "/public"; cluster = "app"; }, { prefix = "/api"; cluster = "app"; }'
write_config "$T/gw.conf"
sed -i "s|^audit = .*|audit = { path = \"$T/audit.log\"; signing_key = \"$T/audit.key\"; checkpoint_records = 100; };|" "$T/gw.conf"
start_gateway "$T/gw.conf"

# urls N PATH: a curl config asking N times for PATH (i appended), one connection reused.
urls() {
	local i
	for ((i = 0; i < $1; i++)); do
		printf 'url = "https://localhost:%s%s%d?access_token=SECRET-QUERY-%d"\n' "$GW_PORT" "$2" "$i" "$i"
		printf 'output = "/dev/null"\n'
	done
}
# batch CERT N PATH [curl args]: N requests as CERT, statuses one per line into $T/status.
batch() {
	local who=$1 n=$2 path=$3
	shift 3
	urls "$n" "$path" >"$T/urls-$who-$n"
	gw_curl "$who" / -K "$T/urls-$who-$n" -o /dev/null -H "Cookie: session=SECRET-COOKIE" \
		-H "X-Secret: SECRET-HEADER" "$@" -w '%{http_code}\n' 2>/dev/null >>"$T/status"
}
: >"$T/status"
pids=()
batch alice 400 /public/ok &
pids+=($!)
batch alice 300 /api/admin/x &
pids+=($!)
batch bob 200 /nothing/ &
pids+=($!)
batch alice 100 /api/v -H "Authorization: Bearer SECRET-TOKEN-abc" & # refused: 401
pids+=($!)
wait "${pids[@]}"
for i in $(seq 1 7); do
	gw_status - /public/x >/dev/null # no client certificate: refused handshake
done
stop_pid "$GW_PID"

statuses=$(sort "$T/status" | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
# gw_curl also fetches "/" once per batch (the URL given on its command line): 404.
check "answers" "200=400 401=100 403=300 404=204 " "$statuses"
log=$T/audit.log
check "request records" 1004 "$(grep -c '"type":"request"' "$log")"
check "handshake records" 7 "$(grep -c '"type":"handshake"' "$log")"
check_not_contains "no token, query or cookie in the log" "SECRET" "$(cat "$log")"

# Every record has the fields the issue lists, and the log is one chain.
fields=$(python3 - "$log" <<'EOF'
import json, sys
need = {"request": ["time", "request_id", "worker", "client", "tls", "cert", "identity", "method", "path",
                    "route", "decision", "reason", "rule", "attempts", "status", "bytes_in",
                    "bytes_out", "duration_us", "policy_sha256", "seq", "chain"],
        "handshake": ["time", "worker", "client", "decision", "reason", "handshake_us", "seq", "chain"]}
bad = 0
for n, line in enumerate(open(sys.argv[1]), 1):
    o = json.loads(line)
    if o["seq"] != n:
        bad += 1
    for k in need.get(o["type"], []):
        if k not in o:
            bad += 1
            print("line", n, "lacks", k, file=sys.stderr)
    if o["type"] == "request":
        if set(o["duration_us"]) != {"handshake", "policy", "upstream", "total"}:
            bad += 1
        if set(o["cert"]) != {"spiffe_id", "cn", "sha256", "serial", "issuer"}:
            bad += 1
        if o["status"] == 200 and (o["decision"] != "allow" or not o["rule"] or "upstream" not in o):
            bad += 1
print(bad)
EOF
)
check "every record complete, seq = line number" 0 "$fields"
check_contains "a 403 names the deny rule" '"rule":"'"$T"'/gw.conf:' "$(grep '"status":403' "$log" | head -n1)"

# Queries: filters combine, --summary counts per identity and route.
q() {
	"$GATEWAYCTL" audit query "$log" "$@" | grep -c .
}
check "query: 403 denies" 300 "$(q --decision deny --status 403)"
check "query: by identity" 201 "$(q --identity bob)"
check "query: path prefix" 300 "$(q --path-prefix /api/admin)"
check "query: refused handshakes are listed" 7 "$("$GATEWAYCTL" audit query "$log" | grep -c '"type":"handshake"')"
check "query: time window" "0 0 1011" "$(q --since 2999-01-01) $(q --until 2000-01-01T00:00:00Z) $(q --since 2000-01-01 --until 2999-12-31T23:59:59.5+02:00)"
summary=$("$GATEWAYCTL" audit query "$log" --summary)
check_contains "summary: per identity" "       400      403  alice" "$summary"
check_contains "summary: per route" "         0      400  /api" "$summary"
check_contains "summary: per route" "       400        0  /public" "$summary"
check_contains "summary: top deny reason" "       300  policy_deny_rule" "$summary"
check_contains "summary: refused handshakes" "         7  handshake: no_cert" "$summary"

out=$("$GATEWAYCTL" audit verify "$log" --pubkey "$T/audit.pub")
check "untouched log verifies" 0 $?
check_contains "verify counts the checkpoints" "signed by key" "$out"
n=$(wc -l <"$log")

# damaged NAME EXPECTED: verify a damaged copy ($T/bad.log), expect the FAIL text.
damaged() {
	local out rc
	out=$("$GATEWAYCTL" audit verify "$T/bad.log" --pubkey "$T/audit.pub")
	rc=$?
	check "$1: verify fails" 1 "$rc"
	check_contains "$1: names the record" "$2" "$out"
}
sed '50s/"time":"2/"time":"3/' "$log" >"$T/bad.log"
damaged "byte changed" "bad.log:50: record 50: modified"
sed '60d' "$log" >"$T/bad.log"
damaged "line deleted" "bad.log:60: record 60: deleted"
awk 'NR == 70 { x = $0; next } NR == 71 { print; print x; next } { print }' "$log" >"$T/bad.log"
damaged "two lines swapped" "bad.log:70: record 70: reordered"
{ head -n 79 "$log"; sed -n '10p' "$log"; tail -n +80 "$log"; } >"$T/bad.log"
damaged "line inserted" "bad.log:80: record 80: inserted"
head -n $((n - 5)) "$log" >"$T/bad.log"
damaged "tail truncated" "record $((n - 4)): truncated"
# Another key signs a checkpoint: a gateway with that key appends to a copy of the log.
cp "$log" "$T/bad.log"
sed "s|$T/audit.log|$T/bad.log|; s|$T/audit.key|$T/other.key|" "$T/gw.conf" >"$T/other.conf"
start_gateway "$T/other.conf"
stop_pid "$GW_PID"
damaged "checkpoint forged with another key" "record $((n + 2)): bad_signature: checkpoint $((n + 2)) is signed by another key"
# The rewritten log is a valid chain, so without the key only the chain is checked.
"$GATEWAYCTL" audit verify "$T/bad.log" >/dev/null
check "chain-only verify accepts it" 0 $?
finish
