#!/usr/bin/env bash
# t112: handshake flood. N TCP connections (1000 when the fd limit allows, else 300;
# override with GW_FLOOD_CONNS) that never finish TLS: half send nothing, half send the
# first bytes of a ClientHello and stop. With handshake = 2 s the gateway cuts each one at
# about 2 s (not before), audits it as handshake_timeout, and keeps serving real clients
# meanwhile with normal latency.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
WORKERS=2
EXTRA_TIMEOUTS='handshake = 2;'
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

N=${GW_FLOOD_CONNS:-}
if [ -z "$N" ]; then
	N=300
	[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] && N=1000
fi
HS_TIMEOUT=2

# Opens the connections in waves of 100 (well within the listen backlog), then waits for
# the gateway to close each; records how long each lived.
cat >"$T/flood.py" <<'EOF'
import json, selectors, socket, sys, time
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
# A TLS record header announcing a 512-byte ClientHello, then 4 bytes of it: the server
# must wait for the rest, which never comes.
partial = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"
sel = selectors.DefaultSelector()
born, cut, failed = {}, {}, 0
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if i % 2:
            s.sendall(partial)
        s.setblocking(False)
        born[s] = time.monotonic()
        sel.register(s, selectors.EVENT_READ)
    except OSError:
        failed += 1
    if i % 100 == 99:
        time.sleep(0.05)
deadline = time.monotonic() + 40
while len(cut) < len(born) and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=0.2):
        s = key.fileobj
        try:
            d = s.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            d = b""
        if not d:
            cut[s] = time.monotonic() - born[s]
            sel.unregister(s)
            s.close()
life = list(cut.values())
json.dump({"opened": len(born), "failed": failed, "cut": len(cut),
           "still_open": len(born) - len(cut),
           "min_s": min(life, default=-1), "max_s": max(life, default=-1)}, open(out, "w"))
EOF

real_loop() {
	while [ ! -e "$T/flood.done" ]; do
		gw_curl alice /public/real -o /dev/null -w '%{http_code} %{time_total}\n' 2>/dev/null ||
			echo "000 99"
		sleep 0.2
	done >"$T/real.txt"
}
real_loop &
REAL_PID=$!
PIDS+=("$REAL_PID")

python3 "$T/flood.py" "$GW_PORT" "$N" "$T/flood.json" 2>"$T/flood.log"
touch "$T/flood.done"
wait "$REAL_PID"

res=$(cat "$T/flood.json" 2>/dev/null)
echo "flood: $res"
check "all $N flood connections were accepted" "$N" "$(json_get "$res" opened)"
check "every flood connection was cut" "$N" "$(json_get "$res" cut)"
CHECKS=$((CHECKS + 1))
if python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if a >= $HS_TIMEOUT - 0.5 and b <= $HS_TIMEOUT + 12 else 1)" \
	"$(json_get "$res" min_s)" "$(json_get "$res" max_s)"; then
	pass "flood connections lived $(json_get "$res" min_s) s .. $(json_get "$res" max_s) s"
else
	fail "flood connections lived $(json_get "$res" min_s) s .. $(json_get "$res" max_s) s (want ${HS_TIMEOUT}s .. $((HS_TIMEOUT + 12))s)"
fi
sleep 0.5
check "each cut audited as handshake_timeout" "$N" \
	"$(grep -c '"reason":"handshake_timeout"' "$T/audit.log")"

n_real=$(grep -c . "$T/real.txt")
n_ok=$(grep -c '^200 ' "$T/real.txt")
CHECKS=$((CHECKS + 1))
if [ "$n_real" -ge 5 ] && [ "$n_real" = "$n_ok" ]; then
	pass "real clients: $n_ok/$n_real requests answered 200 during the flood"
else
	fail "real clients: $n_ok/$n_real answered 200"
fi
stats=$(awk '{ print $2 }' "$T/real.txt" | sort -n | awk '{ v[NR] = $1 } END { printf "%s %s", v[int((NR + 1) / 2)], v[NR] }')
median=${stats% *}
worst=${stats#* }
CHECKS=$((CHECKS + 1))
if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 0.5 and float(sys.argv[2]) < 2.5 else 1)" "$median" "$worst"; then
	pass "real clients: median ${median}s, worst ${worst}s"
else
	fail "real clients too slow: median ${median}s, worst ${worst}s"
fi
check "gateway healthy after the flood" 200 "$(gw_status alice /public/after)"
finish
