#!/usr/bin/env bash
# t083: balancing. Weighted round robin over three backends (weights 1, 2, 5) puts each
# within 5% of its share over 10 000 requests (two workers); least_outstanding sends new
# requests to the idle server while the other one is busy with a slow answer (one worker:
# the counts are per worker); a backup gets nothing while its primary is healthy and
# takes over when the primary dies.
source "$(dirname "$0")/lib.sh"
make_pki
for b in w1 w2 w5 fast slow prim bk; do
	if [ "$b" = slow ]; then start_backend "$b" --mode slow:8000; else start_backend "$b"; fi
done
weighted() { printf '{ address = "127.0.0.1:%s"; name = "backend.test"; weight = %s; }' "$1" "$2"; }
EXTRA_CLUSTER=$(extra_cluster wrr "$(weighted "$BPORT_w1" 1), $(weighted "$BPORT_w2" 2), $(weighted "$BPORT_w5" 5)")
EXTRA_CLUSTER+=$(extra_cluster lor "$(server_entry "$BPORT_slow"), $(server_entry "$BPORT_fast")" \
	'balance = "least_outstanding";')
EXTRA_CLUSTER+=$(extra_cluster bk "$(server_entry "$BPORT_prim"), { address = \"127.0.0.1:$BPORT_bk\"; name = \"backend.test\"; backup = true; }")
ROUTES='{ prefix = "/"; cluster = "app"; },
  { prefix = "/public/wrr"; cluster = "wrr"; },
  { prefix = "/public/lor"; cluster = "lor"; },
  { prefix = "/public/bk"; cluster = "bk"; }'
SERVERS=$(server_entry "$BPORT_fast")
WORKERS=2
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"
URL="https://localhost:$GW_PORT"

# parallel N COUNT PATH: N keep-alive curl clients, COUNT requests each; prints the
# status of every request, one per line.
parallel() {
	local i
	for ((i = 0; i < $1; i++)); do
		gw_curl alice "$3/c$i/last" -o /dev/null -w '%{http_code}\n' \
			-o /dev/null "$URL$3/c$i/[1-$(($2 - 1))]" >"$T/par-$i.out" 2>/dev/null &
	done
	wait
	cat "$T"/par-*.out
	rm -f "$T"/par-*.out
}
reqs() {
	json_get "$(backend_stats "$1")" requests
}

# ---- weighted round robin ----
out=$(parallel 4 2500 /public/wrr)
check "wrr: 10000 requests, all 200" 10000 "$(grep -c '^200$' <<<"$out")"
n1=$(reqs w1) n2=$(reqs w2) n5=$(reqs w5)
echo "wrr: weights 1/2/5 got $n1/$n2/$n5"
CHECKS=$((CHECKS + 1))
if python3 - "$n1" "$n2" "$n5" <<'EOF'; then
import sys
n = [int(x) for x in sys.argv[1:4]]
w = [1, 2, 5]
tot = sum(n)
ok = tot == 10000 and all(abs(n[i] / tot - w[i] / 8) <= 0.05 * w[i] / 8 for i in range(3))
sys.exit(0 if ok else 1)
EOF
	pass "wrr: every share within 5% of its weight"
else
	fail "wrr: shares $n1/$n2/$n5 of 10000 not within 5% of 1/2/5"
fi

# ---- least outstanding (one worker from here on) ----
stop_pid "$GW_PID"
WORKERS=1
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"
URL="https://localhost:$GW_PORT"
# The first pick of a fresh worker is the first server (slow): it answers after 8 s.
t0=$(date +%s%N)
gw_curl alice /public/lor/busy -o "$T/busy.json" &
busy=$!
for ((i = 0; i < 40; i++)); do
	[ "$(reqs slow)" = 1 ] && break
	sleep 0.05
done
check "lor: the slow server is busy with one request" 1 "$(reqs slow)"
before=$(reqs fast)
# Requests are sent only during the first 6 of the slow answer's 8 s, so each is picked
# while the slow server is certainly still busy (however loaded this machine is).
sent=0 ok=0
while [ $(($(date +%s%N) - t0)) -lt 6000000000 ] && [ "$sent" -lt 10 ]; do
	sent=$((sent + 1))
	[ "$(gw_status alice "/public/lor/while-busy/$sent")" = 200 ] && ok=$((ok + 1))
done
ms=$((($(date +%s%N) - t0) / 1000000))
echo "lor: $sent requests sent within $ms ms of the slow request"
CHECKS=$((CHECKS + 1))
if [ "$sent" -ge 3 ]; then pass "lor: $sent requests sent while busy"; else fail "lor: only $sent requests in 6 s"; fi
check "lor: all answered 200" "$sent" "$ok"
check "lor: all went to the idle server" "$sent" "$(($(reqs fast) - before))"
check "lor: none was queued behind the slow one" 1 "$(reqs slow)"
wait "$busy"
check "lor: the slow request completed" slow "$(json_get "$(cat "$T/busy.json")" backend)"

# ---- backup ----
out=$(parallel 2 50 /public/bk)
check "backup: 100 requests, all 200" 100 "$(grep -c '^200$' <<<"$out")"
check "backup: the primary served them all" 100 "$(reqs prim)"
check "backup: the backup got none" 0 "$(reqs bk)"
stop_pid "$BPID_prim"
out=$(parallel 2 50 /public/bk/after)
check "backup: with the primary gone, all 100 still 200" 100 "$(grep -c '^200$' <<<"$out")"
check "backup: the backup served them" 100 "$(reqs bk)"
finish
