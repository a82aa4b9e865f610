#!/usr/bin/env bash
# t082: what health checks and passive ejection do for clients.
#  1. Every server of a cluster down (active checks): 503 at once (the gateway's own
#     duration in the audit record < 50 ms), no connection attempted.
#  2. A backend that accepts and never answers: 504 after upstream_response, and after
#     consecutive_failures such answers it is ejected: the next requests all go to the
#     healthy server, fast.
#  3. A backend whose certificate fails verification: marked down by the checks with the
#     TLS reason, never sent a request, while clients get 200 from the other server.
#  4. A POST whose body reached a backend that then closed is not retried (502); a GET is
#     (200, attempts 2); a POST whose connection failed before anything was sent is.
#  5. A reload keeps what the checks know: a down server stays down (no attempt on it
#     right after the reload), a server that was added starts as up.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend good
start_backend hang --mode hang
start_backend wrong --cert "$PKI/backend-wrong.crt" --key "$PKI/backend-wrong.key"
start_backend closer --mode close
DOWN1=$(free_port)
DOWN2=$(free_port)

HC='health = { path = "/healthz"; interval = 0.2; timeout = 0.5; rise = 2; fall = 2; };'
good=$(server_entry "$BPORT_good")
EXTRA_CLUSTER=$(extra_cluster alldown "$(server_entry "$DOWN1"), $(server_entry "$DOWN2")" "$HC")
EXTRA_CLUSTER+=$(extra_cluster hang "$(server_entry "$BPORT_hang"), $good" \
	'outlier = { consecutive_failures = 2; base_ejection = 30; };')
EXTRA_CLUSTER+=$(extra_cluster wrong "$(server_entry "$BPORT_wrong"), $good" "$HC")
# Weight 100 against 1: the first attempt goes to the failing server (smooth WRR).
heavy() { printf '{ address = "127.0.0.1:%s"; name = "backend.test"; weight = 100; }' "$1"; }
EXTRA_CLUSTER+=$(extra_cluster closer "$(heavy "$BPORT_closer"), $good" \
	'outlier = { consecutive_failures = 0; };')
EXTRA_CLUSTER+=$(extra_cluster postdown "$(heavy "$DOWN1"), $good" \
	'outlier = { consecutive_failures = 0; };')
ROUTES='{ prefix = "/"; cluster = "app"; },
  { prefix = "/public/alldown"; cluster = "alldown"; },
  { prefix = "/public/hang"; cluster = "hang"; },
  { prefix = "/public/wrong"; cluster = "wrong"; },
  { prefix = "/upload/closer"; cluster = "closer"; },
  { prefix = "/upload/postdown"; cluster = "postdown"; }'
SERVERS=$good
RESPONSE_TIMEOUT=1
WORKERS=2
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

# wait_log PATTERN: bounded wait (5 s) for a gateway log line; 0 when it showed up.
wait_log() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -qF -- "$1" "$T/gateway.log" && return 0
		sleep 0.05
	done
	return 1
}
# audit_of ID KEY: one value of the audit record of request ID.
audit_of() {
	json_get "$(audit_record "$1")" "$2"
}
# req CERT PATH [curl args]: "STATUS REQUEST_ID SECONDS" of one request. The id is in the
# gateway's own answers (X-Request-Id), or in what the echo backend saw.
req() {
	local out id
	out=$(gw_curl "$@" -D "$T/h.txt" -o "$T/b.txt" -w '%{http_code} %{time_total}')
	id=$(tr -d '\r' <"$T/h.txt" | sed -n 's/^X-Request-Id: //p')
	[ -n "$id" ] || id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["headers"]["x-request-id"])' "$T/b.txt" 2>/dev/null)
	echo "${out%% *} ${id:--} ${out#* }"
}

# ---- 1. all down ----
wait_log "upstream alldown/127.0.0.1:$DOWN1 (backend.test) down: connect"
wait_log "upstream alldown/127.0.0.1:$DOWN2 (backend.test) down: connect"
check "all down: both servers marked down by the checks" 2 "$(grep -c "upstream alldown/.* down: connect" "$T/gateway.log")"
read -r st id secs <<<"$(req alice /public/alldown/x)"
check "all down: 503" 503 "$st"
check "all down: JSON reason" no_healthy_upstream "$(json_get "$(cat "$T/b.txt")" reason)"
check "all down: no connection attempted" 0 "$(audit_of "$id" attempts)"
us=$(json_get "$(audit_of "$id" duration_us)" total)
echo "all down: answered in ${us} us inside the gateway, ${secs}s at the client"
CHECKS=$((CHECKS + 1))
if [ "$us" -lt 50000 ] 2>/dev/null; then pass "all down: 503 within 50 ms ($us us)"; else fail "all down: took $us us"; fi
CHECKS=$((CHECKS + 1))
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 1.0 else 1)' "$secs"; then
	pass "all down: client got it in ${secs}s"
else
	fail "all down: client waited ${secs}s"
fi

# ---- 2. hung backend: 504 after the timeout, then ejected ----
n504=0 n200=0
for i in 1 2 3 4 5 6; do
	read -r st id secs <<<"$(req alice "/public/hang/$i")"
	case $st in
	504)
		n504=$((n504 + 1))
		check "hang: 504 says why" upstream_response_timeout "$(json_get "$(cat "$T/b.txt")" reason)"
		CHECKS=$((CHECKS + 1))
		if python3 -c 'import sys; sys.exit(0 if 0.8 <= float(sys.argv[1]) < 5 else 1)' "$secs"; then
			pass "hang: 504 after ${secs}s (timeout 1 s)"
		else
			fail "hang: 504 after ${secs}s"
		fi
		;;
	200) n200=$((n200 + 1)) ;;
	*) fail "hang: unexpected status $st" ;;
	esac
	grep -qF "upstream hang/127.0.0.1:$BPORT_hang (backend.test) down: ejected" "$T/gateway.log" && break
done
check "hang: two 504s (consecutive_failures = 2) before the ejection" 2 "$n504"
check_contains "hang: the ejection is logged" "down: ejected for 30000 ms after 2 consecutive failures, last: response timeout" \
	"$(grep "upstream hang/" "$T/gateway.log")"
all="" slow=0
for i in 1 2 3 4 5 6 7 8; do
	read -r st id secs <<<"$(req alice "/public/hang/after/$i")"
	all+="$st "
	python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 0.5 else 1)' "$secs" || slow=$((slow + 1))
done
check "hang: after the ejection every request is served" "200 200 200 200 200 200 200 200 " "$all"
check "hang: and none waited for the hung server" 0 "$slow"
check "hang: the hung backend got exactly the two requests" 2 "$(grep -c 'backend hang: GET /public/hang/[0-9]* -> hang' "$T/backend-hang.log")"

# ---- 3. certificate that fails verification ----
wait_log "upstream wrong/127.0.0.1:$BPORT_wrong (backend.test) down: tls:"
check_contains "wrong cert: marked down with the TLS reason" "down: tls: " \
	"$(grep "upstream wrong/127.0.0.1:$BPORT_wrong" "$T/gateway.log")"
all=""
for i in 1 2 3 4 5 6; do
	all+="$(gw_status alice "/public/wrong/$i") "
done
check "wrong cert: clients are served by the other server" "200 200 200 200 200 200 " "$all"
check "wrong cert: the backend never got a request" 0 "$(json_get "$(backend_stats_host wrong wrong.test)" requests)"
check "wrong cert: its log shows no request line" 0 "$(grep -c 'backend wrong: [A-Z]* /public' "$T/backend-wrong.log")"

# ---- 4. retries: POST with its body sent is not retried, GET is ----
get_att=() post_st=()
for i in 1 2 3 4; do
	read -r st id secs <<<"$(req alice "/upload/closer/get$i")"
	get_att+=("$st/$(audit_of "$id" attempts)")
	read -r st id secs <<<"$(req alice "/upload/closer/post$i" -d 'some=body')"
	post_st+=("$st/$(audit_of "$id" attempts)/$(json_get "$(cat "$T/b.txt")" reason)")
done
echo "GET status/attempts: ${get_att[*]}; POST status/attempts/reason: ${post_st[*]}"
check "GET: each was retried after the close and answered" "200/2 200/2 200/2 200/2" "${get_att[*]}"
check "POST: each reached the closing backend and got 502, not retried" \
	"$(printf '502/1/upstream_closed_early %.0s' 1 2 3 4)" "${post_st[*]} "
check "the closing backend did receive the four POST bodies" 4 \
	"$(grep -c 'backend closer: POST /upload/closer/post[0-9] -> close' "$T/backend-closer.log")"
# Connection refused: nothing was sent, so even a POST goes to the next server.
post_att=""
for i in 1 2 3 4; do
	read -r st id secs <<<"$(req alice "/upload/postdown/$i" -d 'x=1')"
	post_att+="$st/$(audit_of "$id" attempts) "
done
check "POST after a refused connect: retried on the next server" "200/2 200/2 200/2 200/2 " "$post_att"

# ---- 5. reload keeps the verdicts ----
sed -i "s|$(server_entry "$DOWN1"), $(server_entry "$DOWN2")|$(server_entry "$DOWN1"), $(server_entry "$DOWN2"), $good|" "$T/gw.conf"
kill -HUP "$GW_PID"
wait_log "reload: generation 2 in service"
read -r st id secs <<<"$(req alice /public/alldown/after-reload)"
check "reload: the added server takes the traffic at once" 200 "$st"
check "reload: the servers known down were not tried" 1 "$(audit_of "$id" attempts)"
check "reload: no new down transition was needed" 2 "$(grep -c "upstream alldown/.* down: connect" "$T/gateway.log")"
finish
