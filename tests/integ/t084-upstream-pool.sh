#!/usr/bin/env bash
# t084: upstream connection pools. Keep-alive reuse (far fewer backend handshakes than
# requests); idle connections closed after pool.idle_timeout (the backend's open count
# drops); TLS session resumption when connections are not kept (max_idle = 0: every
# request is a new connection, and all but the first resume); max_connections with a
# bounded queue: one request runs, one waits for the connection and then gets it, the
# rest are refused with 503 at once.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend ka
start_backend nopool
start_backend lim --mode slow:1500
EXTRA_CLUSTER=$(extra_cluster nopool "$(server_entry "$BPORT_nopool")" 'pool = { max_idle = 0; };')
EXTRA_CLUSTER+=$(extra_cluster lim "$(server_entry "$BPORT_lim")" \
	'pool = { max_connections = 1; queue = 1; };')
ROUTES='{ prefix = "/"; cluster = "app"; },
  { prefix = "/public/nopool"; cluster = "nopool"; },
  { prefix = "/public/lim"; cluster = "lim"; }'
SERVERS=$(server_entry "$BPORT_ka")
EXTRA_CLUSTER="pool = { idle_timeout = 3; }; $EXTRA_CLUSTER"
WORKERS=2
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"
URL="https://localhost:$GW_PORT"
stat() {
	json_get "$(backend_stats "$1")" "$2"
}

# ---- reuse ----
kpids=()
for i in 0 1; do
	gw_curl alice /public/ka/c$i/last -o /dev/null -w '%{http_code}\n' \
		-o /dev/null "$URL/public/ka/c$i/[1-999]" >"$T/ka-$i.out" 2>/dev/null &
	kpids+=($!)
done
wait "${kpids[@]}"
check "reuse: 2000 requests, all 200" 2000 "$(cat "$T"/ka-*.out | grep -c '^200$')"
st=$(backend_stats ka) # one request: the idle timeout must not run out meanwhile
reqs=$(json_get "$st" requests) hs=$(json_get "$st" handshakes) open_now=$(json_get "$st" connections_open)
echo "reuse: backend saw $reqs requests over $hs TLS handshakes (one is our stats request)"
CHECKS=$((CHECKS + 1))
if [ "$reqs" -eq 2000 ] && [ "$hs" -le 10 ]; then pass "reuse: $hs handshakes for $reqs requests"; else fail "reuse: $hs handshakes for $reqs requests"; fi

# ---- idle timeout ----
CHECKS=$((CHECKS + 1))
if [ "$open_now" -ge 2 ]; then pass "idle: pooled connections open at the backend ($((open_now - 1)) + ours)"; else fail "idle: connections_open=$open_now"; fi
sleep 4
check "idle: after the idle timeout only our own connection is open" 1 "$(stat ka connections_open)"

# ---- resumption ----
out=$(gw_curl alice /public/nopool/last -o /dev/null -w '%{http_code}\n' -o /dev/null "$URL/public/nopool/[1-49]")
check "resume: 50 requests, all 200" 50 "$(grep -c '^200$' <<<"$out")"
hs=$(stat nopool handshakes) res=$(stat nopool resumed)
echo "resume: $hs handshakes, $res resumed (the stats request is one full handshake)"
CHECKS=$((CHECKS + 1))
if [ "$hs" -ge 50 ] && [ "$res" -ge 45 ]; then pass "resume: no pooling, yet $res of $hs handshakes resumed"; else fail "resume: $res of $hs resumed"; fi
check "resume: each connection closed cleanly (none left open but ours)" 1 "$(stat nopool connections_open)"

# ---- max_connections and queue (per worker: one client connection, so one worker) ----
cat >"$T/burst.py" <<'EOF'
import http.client, ssl, sys, threading, time
port, pki, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=pki + "/server-ca.crt")
ctx.check_hostname = False
ctx.load_cert_chain(pki + "/alice.crt", pki + "/alice.key")
conns = [http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20) for _ in range(n)]
for c in conns:
    c.connect()
# All connections on one worker? The kernel spreads them; report which worker answered.
out = [None] * n
def go(i):
    t = time.time()
    conns[i].request("GET", "/public/lim/%d" % i)
    r = conns[i].getresponse()
    body = r.read()
    out[i] = (r.status, round(time.time() - t, 2), body.decode(errors="replace"))
ts = []
for i in range(n):
    th = threading.Thread(target=go, args=(i,))
    th.start()
    ts.append(th)
    time.sleep(0.1)  # in order: first runs, second waits, the rest find the queue full
for th in ts:
    th.join()
for s, d, b in out:
    print(s, d, b.replace("\n", " ")[:120])
EOF
stop_pid "$GW_PID"
WORKERS=1
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"
res=$(python3 "$T/burst.py" "$GW_PORT" "$PKI" 4)
echo "$res"
st=$(awk '{ printf "%s ", $1 }' <<<"$res")
check "limit: first runs, second waits, third and fourth refused" "200 200 503 503 " "$st"
check_contains "limit: the refusal says the queue is full" upstream_queue_full "$res"
waited=$(sed -n 2p <<<"$res" | awk '{ print $2 }')
CHECKS=$((CHECKS + 1))
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 2.5 else 1)' "$waited"; then
	pass "limit: the queued request waited for the first (${waited}s)"
else
	fail "limit: the queued request took ${waited}s"
fi
refused=$(sed -n 3p <<<"$res" | awk '{ print $2 }')
CHECKS=$((CHECKS + 1))
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 0.5 else 1)' "$refused"; then
	pass "limit: refused at once (${refused}s)"
else
	fail "limit: refusal took ${refused}s"
fi
check "limit: the backend never had more than one connection from us (plus ours)" 2 "$(stat lim connections_total)"
finish
