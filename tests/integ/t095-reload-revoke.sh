#!/usr/bin/env bash
# t095: a CRL update applied by a reload cuts off a certificate on a connection that is
# already open: the next request on that kept-alive connection is refused (403) and the
# connection closed, while other clients keep working.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1

# Start with an empty CRL from the client CA, so "revoked" is not revoked yet.
empty_client_crl "$T/empty.crl"
cat "$T/empty.crl" "$PKI/inter.crl" >"$T/crl.pem"
write_config "$T/gw.conf"
sed -i "s|\"$PKI/crls.pem\"|\"$T/crl.pem\"|" "$T/gw.conf"
EXTRA_POLICY=', { cn = "revoked"; allow = [ "/public" ]; }' write_config "$T/gw2.conf"
sed -i "s|\"$PKI/crls.pem\"|\"$T/crl.pem\"|" "$T/gw2.conf"
cp "$T/gw2.conf" "$T/gw.conf"
start_gateway "$T/gw.conf"

check "not yet revoked: new connection works" 200 "$(gw_status revoked /public/a)"

# A python ssl client keeps one connection open across the reload.
cat >"$T/client.py" <<'PY'
import socket, ssl, sys, time, os
port, pki, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=pki + "/server-ca.crt")
ctx.load_cert_chain(pki + "/revoked.crt", pki + "/revoked.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
def req(path):
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    s.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return "CLOSED", data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return head.split(b" ")[1].decode(), head
print("first", req(b"/public/1")[0], flush=True)
open(flag + ".ready", "w").close()
for _ in range(100):                      # wait (bounded) for the reload to be done
    if os.path.exists(flag + ".go"):
        break
    time.sleep(0.1)
status, head = req(b"/public/2")
print("second", status, flush=True)
try:
    s.settimeout(3)
    rest = s.recv(1)
    print("after", "CLOSED" if rest == b"" else "OPEN")
except (ssl.SSLError, OSError):
    print("after", "CLOSED")
PY
python3 "$T/client.py" "$GW_PORT" "$PKI" "$T/flag" >"$T/client.out" 2>&1 &
cpid=$!
PIDS+=("$cpid")
wait_file "$T/flag.ready" 50
# Revoke: the client CA's CRL now lists "revoked"; reload.
cat "$PKI/ca.crl" "$PKI/inter.crl" >"$T/crl.pem"
kill -HUP "$GW_PID"
for _ in $(seq 1 50); do grep -q "generation 2 in service" "$T/gateway.log" && break; sleep 0.1; done
check_contains "reload applied" "generation 2 in service" "$(cat "$T/gateway.log")"
touch "$T/flag.go"
wait "$cpid"
out=$(cat "$T/client.out")
check_contains "first request on the connection allowed" "first 200" "$out"
check_contains "next request after the CRL update refused" "second 403" "$out"
check_contains "connection closed after the refusal" "after CLOSED" "$out"
check_contains "audit says revoked" '"reason":"revoked"' "$(cat "$T/audit.log")"
check "new connections with the revoked certificate fail the handshake" 000 "$(gw_status revoked /public/a)"
check "other clients unaffected" 200 "$(gw_status alice /public/a)"
finish
