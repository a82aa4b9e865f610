#!/usr/bin/env bash
# t122: graceful drain. Under load, SIGTERM: a request in flight (/slow/1500) completes with
# 200, new connections are refused while the drain runs, the process exits 0 well within
# drain_timeout, and the audit log has a record for every request a client got an answer
# to. Then: a drain that outlasts drain_timeout ends at the deadline, and a second SIGTERM
# exits at once.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
EXTRA_POLICY=', { cn = "alice"; allow = [ "/slow" ]; }' write_config "$T/gw.conf"

now_ms() { date +%s%3N; }

# connect_result: "refused", "accepted" or "other" for a plain TCP connect to the gateway.
connect_result() {
	python3 - "$GW_PORT" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    print("accepted")
except ConnectionRefusedError:
    print("refused")
except OSError:
    print("other")
PY
}

# load_loop N: one request per new connection until told to stop; one status per line.
load_loop() {
	while [ ! -e "$T/stop" ]; do
		gw_status alice /public/load >>"$T/load.$1"
		echo >>"$T/load.$1"
	done
}

# ---- drain under load ----
cp "$T/gw.conf" "$T/drain.conf"
echo 'drain_timeout = 8;' >>"$T/drain.conf"
start_gateway "$T/drain.conf"
for n in 1 2 3; do
	load_loop "$n" &
	PIDS+=($!)
done
# A keep-alive client: several requests on one connection, back to back.
gw_curl alice /public/ka1 -o /dev/null -o /dev/null -o /dev/null -w '%{http_code}\n' \
	"https://localhost:$GW_PORT/public/ka2" "https://localhost:$GW_PORT/public/ka3" \
	>"$T/ka.out" 2>/dev/null
sleep 1
gw_status alice /slow/1500 >"$T/slow.out" &
slow_pid=$!
PIDS+=("$slow_pid")
sleep 0.4
t0=$(now_ms)
kill -TERM "$GW_PID"
sleep 0.3
during=$(connect_result)
wait "$GW_PID"
rc=$?
t1=$(now_ms)
touch "$T/stop"
wait "$slow_pid"
check "exit code 0 after SIGTERM" 0 "$rc"
check "exited within the drain timeout" 1 "$(((t1 - t0) < 8000))"
check "the request in flight completed" 200 "$(cat "$T/slow.out")"
check "no new connection accepted while draining" refused "$during"
check "still refused after exit" refused "$(connect_result)"
check "keep-alive requests answered" "200200200" "$(tr -d '\n' <"$T/ka.out")"
sleep 0.5 # the load loops notice the stop file
answered=$(cat "$T"/load.* | grep -c '^200$')
audited=$(grep -c '"path":"/public/load".*"status":200\|"status":200.*"path":"/public/load"' "$T/audit.log")
check "load ran" 1 "$((answered > 20))"
check "every answered request is in the audit log" "$answered" "$audited"
check_contains "the slow request is audited" '/slow/1500' "$(grep '"status":200' "$T/audit.log")"
check_contains "drain logged" "draining" "$(cat "$T/gateway.log")"

# ---- drain_timeout is a deadline ----
cp "$T/gw.conf" "$T/short.conf"
echo 'drain_timeout = 1.5;' >>"$T/short.conf"
start_gateway "$T/short.conf"
gw_status alice /slow/8000 >"$T/slow2.out" &
slow_pid=$!
PIDS+=("$slow_pid")
sleep 0.5
t0=$(now_ms)
kill -TERM "$GW_PID"
wait "$GW_PID"
rc=$?
t1=$(now_ms)
wait "$slow_pid"
check "deadline drain: exit code 0" 0 "$rc"
check "deadline drain: ends at drain_timeout (1.5 s, < 3 s)" 1 "$(((t1 - t0) >= 1400 && (t1 - t0) < 3000))"
check "deadline drain: the cut request got no 200" 1 "$(($(cat "$T/slow2.out") != 200))"

# ---- a second SIGTERM exits at once ----
start_gateway "$T/drain.conf"
gw_status alice /slow/6000 >/dev/null &
PIDS+=($!)
sleep 0.5
t0=$(now_ms)
kill -TERM "$GW_PID"
sleep 0.2
kill -TERM "$GW_PID"
wait "$GW_PID"
t1=$(now_ms)
check "second SIGTERM: exits at once (< 1.5 s, not after the 6 s request)" 1 "$(((t1 - t0) < 1500))"
check_contains "second SIGTERM: logged" "second signal" "$(cat "$T/gateway.log")"
finish
