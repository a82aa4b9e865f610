#!/usr/bin/env bash
# t060: keep-alive on both sides. 1000 requests on one client connection all succeed, and
# the gateway serves them over pooled upstream connections: the backend sees far fewer
# TLS handshakes than requests. Then the same over the raw client (exact pipelining-free
# request loop on one connection).
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
ROUTES='{ prefix = "/"; cluster = "app"; }'
WORKERS=1
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

URL="https://localhost:$GW_PORT"
# One curl, 1000 URLs (a glob) plus one final URL (gw_curl appends it) whose echo body we
# keep: curl reuses its connection across all of them. Each -o takes the next URL in
# order. -w prints per transfer: status and new connections.
out=$(gw_curl alice /public/last -w '%{http_code} %{num_connects}\n' \
	-o /dev/null "$URL/public/k[1-1000]" -o "$T/last.json")
n_total=$(printf '%s\n' "$out" | grep -c .)
n_200=$(printf '%s\n' "$out" | grep -c '^200 ')
connects=$(printf '%s\n' "$out" | awk '{ s += $2 } END { print s + 0 }')
check "curl made 1001 transfers" 1001 "$n_total"
check "all 1001 requests answered 200" 1001 "$n_200"
check "client side: one TLS connection for all requests" 1 "$connects"

last=$(cat "$T/last.json")
check "last echo came through" "/public/last" "$(json_get "$last" path)"
hs=$(json_get "$last" tls_handshakes)
creq=$(json_get "$last" conn_requests)
CHECKS=$((CHECKS + 1))
if [ "$hs" -ge 1 ] 2>/dev/null && [ "$hs" -le 2 ]; then
	pass "echo: backend had $hs TLS handshake(s) for 1001 requests"
else
	fail "echo: backend tls_handshakes=$hs, expected 1..2"
fi
CHECKS=$((CHECKS + 1))
if [ "$creq" -ge 1000 ] 2>/dev/null; then
	pass "echo: the upstream connection carried $creq requests"
else
	fail "echo: conn_requests=$creq, expected >= 1000 on one pooled upstream connection"
fi

# The backend's own counters, fetched directly (this adds one handshake of its own).
st=$(backend_stats b1)
reqs=$(json_get "$st" requests)
hs=$(json_get "$st" handshakes)
CHECKS=$((CHECKS + 1))
if [ "$reqs" -ge 1000 ] 2>/dev/null && [ "$hs" -le 4 ] 2>/dev/null; then
	pass "backend stats: $reqs requests over $hs handshakes"
else
	fail "backend stats: requests=$reqs handshakes=$hs (want >= 1000 and <= 4)"
fi
check "one audit record per request" 1001 "$(grep -c '"type":"request"' "$T/audit.log")"
check "no request failed" 0 "$(grep '"type":"request"' "$T/audit.log" | grep -vc '"status":200')"

# Raw client: the same request 1000 times on one connection, each sent after the
# previous answer; all 200, the connection still open at the end.
if [ -x "$TESTCLIENT" ]; then
	before=$(json_get "$(backend_stats b1)" handshakes)
	res=$(testclient --timeout-ms 20000 --repeat 1000 \
		--send-str 'GET /public/raw HTTP/1.1\r\nHost: localhost\r\n\r\n')
	check "testclient: handshake" 1 "$(printf '%s\n' "$res" | grep -c '^HANDSHAKE OK')"
	check "testclient: 1000 responses, all 200" 1000 "$(printf '%s\n' "$res" | grep -c '^STATUS 200$')"
	check "testclient: connection kept open" "OPEN" "$(printf '%s\n' "$res" | tail -n1)"
	after=$(json_get "$(backend_stats b1)" handshakes)
	# +1 for the stats request itself; the pooled upstream connection served the rest.
	CHECKS=$((CHECKS + 1))
	if [ "$((after - before))" -le 2 ] 2>/dev/null; then
		pass "testclient: backend handshakes grew by $((after - before)) for 1000 requests"
	else
		fail "testclient: backend handshakes $before -> $after"
	fi
else
	echo "note: $TESTCLIENT not built, raw-client part skipped"
fi
finish
