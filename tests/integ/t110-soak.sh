#!/usr/bin/env bash
# t110: soak. For GW_SOAK_SECONDS (default 20; CI sets 60) the gateway takes mixed
# traffic at once: allowed keep-alive load (alice, closed loop), denied requests (bob,
# 403), clients with an untrusted certificate (TLS refusals), and a curl loop cycling
# through allowed, denied, refused-path and no-certificate requests. Every outcome must be
# the expected one (zero unexpected errors), and after the warm-up the gateway's RSS must
# stay flat within a margin (not asserted for sanitizer builds, whose allocator quarantine
# grows by design).
source "$(dirname "$0")/lib.sh"

LG=$GW_BUILD/bench/gw_loadgen
if [ ! -x "$LG" ]; then
	echo "FAIL: $LG not built (cmake --build ... --target gw_loadgen)"
	exit 1
fi
make_pki
start_backend b1
WORKERS=2
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

D=${GW_SOAK_SECONDS:-20}
WARM=$((D / 4 < 3 ? 3 : D / 4))

# lg NAME WHO PATH ARGS...: gw_loadgen as WHO against PATH; JSON in $T/lg-NAME.json.
lg() {
	local name=$1 who=$2 path=$3
	shift 3
	"$LG" --url "https://127.0.0.1:$GW_PORT$path" --servername localhost -H "Host: localhost" \
		--cert "$PKI/$who.crt" --key "$PKI/$who.key" --ca "$PKI/server-ca.crt" --timeout 10s \
		--json "$@" >"$T/lg-$name.json" 2>"$T/lg-$name.log"
}
# lgv NAME EXPR: a Python expression over that JSON (`j`).
lgv() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$T/lg-$1.json" "$2" 2>&1
}

# Warm-up: pools, allocator arenas and caches reach their working size.
lg warm alice /public/soak -c 8 -d "${WARM}s"
check "warm-up: no errors" 0 "$(lgv warm 'j["errors"]["total"]')"

# rss_loop: the gateway's VmRSS once a second until the soak is over.
rss_loop() {
	while [ ! -e "$T/soak.done" ]; do
		gw_vm VmRSS
		sleep 1
	done >"$T/rss.txt"
}

# curl_loop: one request of each kind per round; every status must be the expected one.
curl_loop() {
	local got
	while [ ! -e "$T/soak.done" ]; do
		for case in "alice /public/c 200" "bob /api/x 403" "alice /public/%2e%2e/%2e%2e/x 400" \
			"- /public/c 000" "untrusted /public/c 000"; do
			set -- $case
			got=$(gw_status "$1" "$2")
			echo "$1 $2 $3 $got"
		done
		sleep 0.2
	done >"$T/curl.txt"
}

rss_loop &
PIDS+=($!)
RSS_PID=$!
curl_loop &
PIDS+=($!)
CURL_PID=$!
lg allowed alice /public/soak -c 6 -d "${D}s" &
P1=$!
lg denied bob /api/soak -c 2 -d "${D}s" &
P2=$!
lg badcert untrusted /public/soak -c 2 --new-conn --rate 40 -d "${D}s" &
P3=$!
PIDS+=("$P1" "$P2" "$P3")
wait "$P1" "$P2" "$P3"
touch "$T/soak.done"
wait "$RSS_PID" "$CURL_PID"

echo "allowed: $(lgv allowed '(j["requests"], j["ok_rps"], j["errors"])')"
check "allowed: requests answered 2xx, no error of any kind" 0 "$(lgv allowed 'j["errors"]["total"]')"
check "allowed: load was served" True "$(lgv allowed 'j["ok"] > 100')"
check "denied: every request answered 403 and nothing else" True \
	"$(lgv denied 'j["requests"] > 10 and j["status"]["4xx"] == j["requests"] == j["errors"]["status_4xx"] == j["errors"]["total"]')"
# With TLS 1.3 the client's handshake completes before the server has checked its
# certificate: the refusal then shows as the server's alert (tls) or, when the request
# was written after it, as a reset (write). Nothing may get a response or time out.
check "bad certificate: every attempt refused in TLS and nothing else" True \
	"$(lgv badcert 'j["requests"] > 10 and j["responses"] == 0 and j["errors"]["tls"] > 0 and j["errors"]["tls"] + j["errors"]["write"] + j["errors"]["read"] == j["errors"]["total"] == j["requests"]')"
n_curl=$(grep -c . "$T/curl.txt")
bad_curl=$(awk '$3 != $4' "$T/curl.txt")
CHECKS=$((CHECKS + 1))
if [ "$n_curl" -ge 10 ] && [ -z "$bad_curl" ]; then
	pass "curl loop: $n_curl requests, every status as expected"
else
	fail "curl loop: $n_curl requests, unexpected: $(echo "$bad_curl" | head -n 5)"
fi
check "no internal errors audited" 0 "$(grep -c '"reason":"internal_error"' "$T/audit.log")"
check "gateway still serving" 200 "$(gw_status alice /public/after)"

# RSS flat: bounded structures (audit queue, upstream pools, token cache, malloc arenas)
# fill up during the first part of the soak, by an amount that depends on how loaded the
# machine is; a leak keeps growing. So the last quarter's peak must stay within 20% + 8 MiB
# of the peak of the second quarter, i.e. memory stops growing once the soak is running.
read -r first mid late n_rss < <(awk '{ v[NR] = $1 } END {
	q = int(NR / 4); a = 0; b = 0
	for (i = q + 1; i <= 2 * q; i++) if (v[i] > a) a = v[i]
	for (i = NR - q + 1; i <= NR; i++) if (v[i] > b) b = v[i]
	print v[1], a, b, NR }' "$T/rss.txt")
echo "gateway VmRSS: ${first} kB after warm-up, ${mid} kB peak in the second quarter, ${late} kB peak in the last (${n_rss} samples)"
if is_sanitized "$GATEWAYD"; then
	echo "note: sanitizer build, RSS flatness not asserted"
else
	CHECKS=$((CHECKS + 1))
	if [ "${n_rss:-0}" -ge 8 ] && [ "$late" -le $((mid * 12 / 10 + 8192)) ]; then
		pass "RSS flat: ${mid} kB -> at most ${late} kB"
	else
		fail "RSS grew: ${mid} kB (second quarter) -> ${late} kB (last quarter) over ${n_rss} samples"
	fi
fi
finish
