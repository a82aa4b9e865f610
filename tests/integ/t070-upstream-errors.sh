#!/usr/bin/env bash
# t070: what the client gets when the upstream side fails: a backend with the wrong
# certificate (502, and it never sees the request), nobody listening (503, fast), no
# answer in time (504 after upstream_response), failover to a live server (200, two
# attempts), and a backend that hangs up without answering (502). Every error answer is
# the gateway's JSON with a request id, and the audit record of that id says why.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
# Same CA, but the certificate is for wrong.test while the gateway expects backend.test.
start_backend wrong --cert "$PKI/backend-wrong.crt" --key "$PKI/backend-wrong.key"
start_backend hang --mode hang
start_backend closer --mode close
DOWN=$(free_port)

EXTRA_CLUSTER=$(extra_cluster wrong "$(server_entry "$BPORT_wrong")")
EXTRA_CLUSTER+=$(extra_cluster down "$(server_entry "$DOWN")")
EXTRA_CLUSTER+=$(extra_cluster hang "$(server_entry "$BPORT_hang")")
EXTRA_CLUSTER+=$(extra_cluster closer "$(server_entry "$BPORT_closer")")
EXTRA_CLUSTER+=$(extra_cluster failover "$(server_entry "$DOWN"), $(server_entry "$BPORT_b1")")
ROUTES='{ prefix = "/"; cluster = "app"; },
  { prefix = "/public/wrong"; cluster = "wrong"; },
  { prefix = "/public/down"; cluster = "down"; },
  { prefix = "/public/hang"; cluster = "hang"; },
  { prefix = "/public/close"; cluster = "closer"; },
  { prefix = "/public/failover"; cluster = "failover"; }'
RESPONSE_TIMEOUT=1
WORKERS=1
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

check "sanity: the healthy cluster answers" 200 "$(gw_status alice /public/ok)"

# upstream_error NAME PATH STATUS ERROR AUDIT_REASON: one failing request; checks the
# status, the JSON error body and its request id (also in the X-Request-Id header), and
# the audit record. Leaves the elapsed seconds in ELAPSED and the request id in LAST_ID.
upstream_error() {
	local name=$1 path=$2 status=$3 error=$4 reason=$5 out body hdrs id rec
	out=$(gw_curl alice "$path" -D "$T/h.txt" -o "$T/b.txt" -w '%{http_code} %{time_total}')
	body=$(cat "$T/b.txt")
	hdrs=$(tr -d '\r' <"$T/h.txt")
	ELAPSED=${out#* }
	check "$name: status" "$status" "${out%% *}"
	check "$name: JSON error token" "$error" "$(json_get "$body" error)"
	id=$(json_get "$body" request_id)
	LAST_ID=$id
	CHECKS=$((CHECKS + 1))
	if [[ "$id" =~ ^[0-9a-f]{16,}$ ]]; then pass "$name: request id $id"; else fail "$name: bad request id [$id]"; fi
	check_contains "$name: X-Request-Id header matches" "X-Request-Id: $id" "$hdrs"
	rec=$(audit_record "$id")
	check "$name: audit status" "$status" "$(json_get "$rec" status)"
	check "$name: audit reason" "$reason" "$(json_get "$rec" reason)"
	check "$name: audit path" "$path" "$(json_get "$rec" path)"
}

# 1. Certificate for the wrong name: 502 and the backend never saw a request.
upstream_error "wrong cert" /public/wrong/x 502 upstream_tls upstream_tls_failed
check_contains "wrong cert: the gateway logged the verification failure" "upstream_tls" \
	"$(grep -F "$LAST_ID" "$T/gateway.log")"
st=$(backend_stats_host wrong wrong.test)
check "wrong cert: the backend counted no request" 0 "$(json_get "$st" requests)"
check "wrong cert: nothing reached the backend" 0 "$(grep -c 'backend wrong: [A-Z]* /public' "$T/backend-wrong.log")"

# 2. Nothing listening: 503, at once (the single server is not retried).
upstream_error "backend down" /public/down/x 503 no_backend no_backend_available
CHECKS=$((CHECKS + 1))
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 2.0 else 1)' "$ELAPSED"; then
	pass "backend down: answered in ${ELAPSED}s"
else
	fail "backend down: took ${ELAPSED}s (want < 2s)"
fi
check "backend down: one attempt (a tried server is not retried)" 1 \
	"$(json_get "$(grep '/public/down/x' "$T/audit.log" | tail -n1)" attempts)"

# 3. The backend takes the request and never answers: 504 after ~1 s.
upstream_error "hang" /public/hang/x 504 upstream_timeout upstream_response_timeout
CHECKS=$((CHECKS + 1))
if python3 -c 'import sys; t=float(sys.argv[1]); sys.exit(0 if 0.8 <= t <= 10.0 else 1)' "$ELAPSED"; then
	pass "hang: 504 after ${ELAPSED}s"
else
	fail "hang: 504 after ${ELAPSED}s (want 0.8..10)"
fi
check "hang: the backend did get the request" 1 "$(grep -c 'backend hang: GET /public/hang/x -> hang' "$T/backend-hang.log")"

# 4. Two servers, one down: every request succeeds; at least one needed a second attempt.
all=""
for i in 1 2 3 4; do
	all+="$(gw_status alice "/public/failover/$i") "
done
check "failover: all four answered by the live server" "200 200 200 200 " "$all"
max_attempts=$(grep '"path":"/public/failover/' "$T/audit.log" |
	python3 -c 'import json,sys; print(max(json.loads(l)["attempts"] for l in sys.stdin))')
check "failover: some request took attempts=2" 2 "$max_attempts"
check "failover: the audit names the live upstream" 4 \
	"$(grep '"path":"/public/failover/' "$T/audit.log" | grep -c "\"upstream\":\"127.0.0.1:$BPORT_b1\"")"

# 5. The backend reads the request and closes without a byte: 502.
upstream_error "close" /public/close/x 502 upstream_protocol upstream_closed_early

# The gateway is still healthy after all of that.
check "gateway still serves" 200 "$(gw_status alice /public/after)"
finish
