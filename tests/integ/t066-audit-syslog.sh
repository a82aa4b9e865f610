#!/usr/bin/env bash
# t066: with syslog = true every line of the audit file also reaches a collector as one
# RFC 5424 message (UDP), byte for byte the same line after the header.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
python3 - "$port" "$T/syslog.out" "$T/collector.ready" >"$T/collector.log" 2>&1 <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(60)
open(sys.argv[3], "w").write("ready\n")
with open(sys.argv[2], "wb", buffering=0) as f:
    while True:
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        f.write(data + b"\n")
EOF
PIDS+=($!)
wait_file "$T/collector.ready" || fail "collector did not start"
write_config "$T/gw.conf"
sed -i "s|^audit = .*|audit = { path = \"$T/audit.log\"; syslog = true; syslog_address = \"127.0.0.1:$port\"; };|" "$T/gw.conf"
start_gateway "$T/gw.conf"
for i in $(seq 1 20); do gw_status alice "/public/$i" >/dev/null; done
gw_status bob /api/x >/dev/null
gw_status - /public/x >/dev/null
stop_pid "$GW_PID"
sleep 0.3

result=$(python3 - "$T/syslog.out" "$T/audit.log" <<'EOF'
import re, sys
msgs = open(sys.argv[1], "rb").read().decode().split("\n")[:-1]
lines = open(sys.argv[2]).read().split("\n")[:-1]
head = re.compile(r"<110>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ gatewayd \d+ audit - ")
bodies = []
for m in msgs:
    h = head.match(m)
    if not h:
        print("bad header:", m[:80])
        sys.exit(0)
    bodies.append(m[h.end():])
print("same" if bodies == lines else f"differ: {len(bodies)} messages, {len(lines)} lines")
EOF
)
check "every line reached syslog in order" same "$result"
check "requests and the refused handshake are there" 22 "$(grep -c -E '"type":"(request|handshake)"' "$T/syslog.out")"
finish
