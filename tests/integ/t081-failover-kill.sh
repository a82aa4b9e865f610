#!/usr/bin/env bash
# t081: a backend dies under load and comes back. Two backends behind one cluster with
# active health checks (interval 0.5 s, fall 2, rise 2); 8 client connections send
# idempotent GETs for 14 s. At 3 s one backend is killed with SIGKILL: no client sees an
# error (failed attempts go to the other server), the checker marks it down within
# fall x interval. At 6.5 s it is restarted on the same port: marked up within rise x
# interval, and it gets traffic again. (The test backend writes each response in one
# write(), so the kill lands between responses: a response cut after its head has reached
# the client cannot be hidden by any proxy.)
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
start_backend b2
INTERVAL=0.5 RISE=2 FALL=2 JITTER=0.2
SERVERS="$(server_entry "$BPORT_b1"), $(server_entry "$BPORT_b2")"
EXTRA_CLUSTER="health = { path = \"/healthz\"; interval = $INTERVAL; timeout = 0.5; rise = $RISE; fall = $FALL; jitter = $JITTER; };"
ROUTES='{ prefix = "/"; cluster = "app"; }'
WORKERS=2
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"
check "sanity: a request goes through" 200 "$(gw_status alice /public/hello)"

# The load: N threads, one keep-alive connection each, GETs until the deadline. Every
# response is timestamped with the backend that served it (X-Backend); any exception or
# non-200 is a client-visible error.
cat >"$T/load.py" <<'EOF'
import http.client, json, ssl, sys, threading, time
port, ca, cert, key, secs, nthr, out = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False  # the chain is still verified; the name is "localhost"
ctx.load_cert_chain(cert, key)
end = time.time() + float(secs)
lock = threading.Lock()
res = {"start": time.time(), "ok": 0, "errors": [], "served": []}
def run(i):
    conn, n = None, 0
    while time.time() < end:
        try:
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx, timeout=10)
            n += 1
            conn.request("GET", "/public/load/%d/%d" % (i, n))
            r = conn.getresponse()
            r.read()
            t, be = time.time(), r.getheader("X-Backend")
            with lock:
                if r.status == 200:
                    res["ok"] += 1
                    res["served"].append((t, be))
                else:
                    res["errors"].append((t, "status %d %s" % (r.status, r.getheader("X-Request-Id"))))
        except Exception as e:
            with lock:
                res["errors"].append((time.time(), repr(e)))
            if conn is not None:
                conn.close()
            conn = None
threads = [threading.Thread(target=run, args=(i,)) for i in range(int(nthr))]
for t in threads: t.start()
for t in threads: t.join()
json.dump(res, open(out, "w"))
EOF
T_LOAD=$(date +%s%N)
python3 "$T/load.py" "$GW_PORT" "$PKI/server-ca.crt" "$PKI/alice.crt" "$PKI/alice.key" 14 8 \
	"$T/load.json" 2>"$T/load.log" &
LOAD=$!
PIDS+=("$LOAD")

# log_delay PATTERN SINCE: seconds from SINCE (epoch) to the gateway's own timestamp of
# the first log line with PATTERN (bounded wait for it to appear); "never" if none.
log_delay() {
	local i line
	for ((i = 0; i < 100; i++)); do
		line=$(grep -F -m1 -- "$1" "$T/gateway.log") && break
		sleep 0.05
	done
	if [ -z "$line" ]; then
		echo never
		return
	fi
	python3 -c 'import sys, datetime as d
t = d.datetime.strptime(sys.argv[1][:27], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=d.timezone.utc)
print("%.2f" % (t.timestamp() - float(sys.argv[2])))' "$line" "$2"
}
# at SECONDS: sleeps until SECONDS after the load started (a fixed schedule, however long
# the checks in between took).
at() {
	local ms=$(((T_LOAD - $(date +%s%N)) / 1000000 + ${1%.*} * 1000 + ${1#*.} * 100))
	[ "$ms" -gt 0 ] && sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
}
# within NAME VALUE LIMIT: VALUE (seconds) is a number <= LIMIT.
within() {
	CHECKS=$((CHECKS + 1))
	if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$2" "$3" 2>/dev/null; then
		pass "$1: ${2}s (limit ${3}s)"
	else
		fail "$1: ${2}s (limit ${3}s)"
	fi
}
# fall x interval, widened by the jitter, plus 0.5 s for scheduling on a loaded box.
LIMIT_DOWN=$(python3 -c "print($FALL * $INTERVAL * (1 + $JITTER) + 0.5)")
LIMIT_UP=$(python3 -c "print($RISE * $INTERVAL * (1 + $JITTER) + 0.5)")

at 3.0
T_KILL=$(date +%s.%N)
kill -9 "$BPID_b2"
wait "$BPID_b2" 2>/dev/null
down=$(log_delay "upstream app/127.0.0.1:$BPORT_b2 (backend.test) down: connect" "$T_KILL")
within "killed backend marked down by the active checks" "$down" "$LIMIT_DOWN"

at 6.5
T_RESTART=$(date +%s.%N)
start_backend b2 --listen "127.0.0.1:$BPORT_b2"
up=$(log_delay "upstream app/127.0.0.1:$BPORT_b2 (backend.test) up:" "$T_RESTART")
within "restarted backend marked up again" "$up" "$LIMIT_UP"

wait "$LOAD"
check "load generator finished" 0 "$?"
res=$(python3 - "$T/load.json" "$T_KILL" "$T_RESTART" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
kill, restart = float(sys.argv[2]), float(sys.argv[3])
b2 = [t for t, be in r["served"] if be == "b2"]
during = sum(1 for t in b2 if kill + 0.2 < t < restart)
after = [t for t in b2 if t > restart]
first = "%.2f" % (after[0] - restart) if after else "never"
print(r["ok"], len(r["errors"]), sum(1 for t in b2 if t < kill), during, len(after), first)
for e in r["errors"][:5]:
    print("error:", e, file=sys.stderr)
EOF
)
read -r ok errors before during after first <<<"$res"
echo "load: $ok ok, $errors errors; b2 served $before before the kill, $during while dead, $after after restart (first after ${first}s)"
check "no client-visible error during kill and restart" 0 "$errors"
CHECKS=$((CHECKS + 1))
if [ "$ok" -ge 1000 ] 2>/dev/null; then pass "load ran: $ok requests"; else fail "load too small: $ok"; fi
CHECKS=$((CHECKS + 1))
if [ "$before" -ge 100 ] 2>/dev/null; then pass "b2 shared the load before the kill ($before)"; else fail "b2 served $before before the kill"; fi
check "nothing was served by the dead backend" 0 "$during"
CHECKS=$((CHECKS + 1))
if [ "$after" -ge 20 ] 2>/dev/null; then pass "b2 gets traffic again after restart ($after)"; else fail "b2 served $after after restart"; fi
within "traffic back on b2 after restart" "$first" "$LIMIT_UP"
check "the log explains the failed attempts" 1 "$(grep -c "down: connect" "$T/gateway.log")"
finish
