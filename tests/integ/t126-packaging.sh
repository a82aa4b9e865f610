#!/usr/bin/env bash
# t126: packaging habits. `cmake --install` puts binaries, example configs, docs, the
# systemd unit and the logrotate snippet in the usual places, the unit names the installed
# paths and the hardening options and passes `systemd-analyze verify`; the readiness
# protocol works: under a fake systemd ($NOTIFY_SOCKET) gatewayd sends READY=1 once
# serving and STOPPING=1 when SIGTERM starts the drain.
source "$(dirname "$0")/lib.sh"
I=$T/inst
out=$(cmake --install "$GW_BUILD" --prefix "$I" 2>&1)
check "cmake --install succeeds" 0 $?
for f in sbin/gatewayd bin/gatewayctl share/doc/gatewayd/examples/gateway.conf.example \
	share/doc/gatewayd/operations.md share/doc/gatewayd/config.md share/doc/gatewayd/README.md \
	lib/systemd/system/gatewayd.service etc/logrotate.d/gatewayd; do
	check "installed: $f" yes "$([ -s "$I/$f" ] && echo yes)"
done
check "installed gatewayd runs" 0 "$("$I/sbin/gatewayd" -h >/dev/null 2>&1; echo $?)"

unit=$(cat "$I/lib/systemd/system/gatewayd.service")
check_contains "unit: installed binary" "ExecStart=$I/sbin/gatewayd -c $I/etc/gatewayd/gateway.conf" "$unit"
check_not_contains "unit: every placeholder filled" "@GW_" "$unit"
for kv in Type=notify 'ExecReload=/bin/kill -HUP $MAINPID' NoNewPrivileges=yes ProtectSystem=strict \
	PrivateTmp=yes ProtectHome=yes CapabilityBoundingSet=CAP_NET_BIND_SERVICE User=gatewayd \
	KillSignal=SIGTERM; do
	check_contains "unit: $kv" "$kv" "$unit"
done
if command -v systemd-analyze >/dev/null; then
	check "unit: systemd-analyze verify is silent" "" \
		"$(systemd-analyze verify "$I/lib/systemd/system/gatewayd.service" 2>&1 | grep -v 'gatewayd.*does not exist\|Failed to \(connect\|create\)' )"
fi
check_contains "logrotate: reopen signal" "--signal=SIGUSR1" "$(cat "$I/etc/logrotate.d/gatewayd")"

# ---- sd_notify ----
make_pki
start_backend b1
write_config "$T/gw.conf"
cat >"$T/notify.py" <<'PY'
import socket, sys, os
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(30)
open(path + ".bound", "w").close()
with open(sys.argv[2], "a") as out:
    for _ in range(2):
        msg = s.recv(4096).decode()
        out.write(msg + "\n")
        out.flush()
PY
python3 "$T/notify.py" "$T/notify.sock" "$T/notify.out" &
PIDS+=($!)
npid=$!
wait_file "$T/notify.sock.bound" 50
NOTIFY_SOCKET=$T/notify.sock start_gateway "$T/gw.conf"
for ((i = 0; i < 50; i++)); do grep -q READY "$T/notify.out" 2>/dev/null && break; sleep 0.1; done
check "READY=1 once serving" "READY=1" "$(head -n1 "$T/notify.out" 2>/dev/null)"
check "serving when READY was sent" 200 "$(gw_status alice /public/a)"
stop_pid "$GW_PID"
wait "$npid"
check "STOPPING=1 on SIGTERM" "STOPPING=1" "$(sed -n 2p "$T/notify.out")"
finish
