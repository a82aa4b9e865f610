#!/usr/bin/env bash
# t124: reload acceptance. Under continuous bounded load (gw_loadgen, 8 connections: 4
# keep-alive, 4 new-connection-per-request), 10 reloads each change routes, policy, the
# server certificate (rotated on disk) and the CRL: zero failed requests; after every
# reload requests follow the new rules, new handshakes present the new certificate, and
# a connection opened before a rotation keeps working with the certificate it got.
# Then a key that does not match its certificate and a corrupt CRL: the reload is
# refused with the file and the reason, and the old generation keeps serving.
source "$(dirname "$0")/lib.sh"
LG=$GW_BUILD/bench/gw_loadgen
if [ ! -x "$LG" ]; then
	echo "FAIL: $LG not built"
	exit 1
fi
make_pki
start_backend b1
L=$T/live
mkdir -p "$L"

# Server certificate B from a second server CA; clients trust both CAs.
"$GATEWAYCTL" pki init --dir "$T/sca" --cn "t124 Server CA" >/dev/null
"$GATEWAYCTL" pki issue --dir "$T/sca" --cn localhost --server --dns localhost \
	--out "$T/srvB" >/dev/null
cat "$PKI/server-ca.crt" "$T/sca/ca.crt" >"$T/server-cas.pem"
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
FP_A=$(fp "$PKI/server.crt")
FP_B=$(fp "$T/srvB.crt")

# An empty CRL of the client CA ("revoked" not revoked) next to mkpki's (it is revoked).
mkdir -p "$T/db"
: >"$T/db/index.txt"
echo 01 >"$T/db/crlnumber"
printf '[ca]\ndefault_ca = d\n[d]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 30\n' \
	"$T/db/index.txt" "$T/db/crlnumber" >"$T/db/ca.cnf"
openssl ca -gencrl -batch -config "$T/db/ca.cnf" -keyfile "$PKI/ca.key" -cert "$PKI/ca.crt" \
	-out "$T/empty.crl" 2>/dev/null
cat "$T/empty.crl" "$PKI/inter.crl" >"$T/crl-empty.pem"

# put SRC DST: replace a live file atomically (write aside, rename over).
put() {
	cp "$1" "$2.new" && mv "$2.new" "$2"
}

# gen_files I: the on-disk state of reload I (0 = start): certificate A on even, B on
# odd; the CRL revokes "revoked" on even, nothing on odd; I in routes and policy.
gen_files() {
	local i=$1
	if ((i % 2)); then
		put "$T/srvB.crt" "$L/server.crt"
		put "$T/srvB.key" "$L/server.key"
		put "$T/crl-empty.pem" "$L/crl.pem"
	else
		put "$PKI/server.crt" "$L/server.crt"
		put "$PKI/server.key" "$L/server.key"
		put "$PKI/crls.pem" "$L/crl.pem"
	fi
	EXTRA_ROUTES=", { prefix = \"/gen$i\"; cluster = \"app\"; rewrite = \"/rw$i\"; }" \
		EXTRA_POLICY=", { cn = \"bob\"; allow = [ \"/gen$i\" ]; }, { cn = \"revoked\"; allow = [ \"/public\" ]; }" \
		write_config "$T/gw.conf.new"
	sed -i -e "s|\"$PKI/server.crt\"|\"$L/server.crt\"|" -e "s|\"$PKI/server.key\"|\"$L/server.key\"|" \
		-e "s|\"$PKI/crls.pem\"|\"$L/crl.pem\"|" "$T/gw.conf.new"
	mv "$T/gw.conf.new" "$T/gw.conf"
}

# req WHO PATH [curl args]: a request trusting both server CAs.
req() {
	local who=$1 path=$2
	shift 2
	curl -sS --max-time 10 --cacert "$T/server-cas.pem" --cert "$PKI/$who.crt" \
		--key "$PKI/$who.key" --resolve "localhost:$GW_PORT:127.0.0.1" "$@" \
		"https://localhost:$GW_PORT$path" 2>/dev/null
}
status() { req "$@" -o /dev/null -w '%{http_code}'; }
presented() {
	openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost -cert "$PKI/alice.crt" \
		-key "$PKI/alice.key" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 |
		cut -d= -f2
}
wait_log() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -qF -- "$1" "$T/gateway.log" && return 0
		sleep 0.05
	done
	return 1
}

gen_files 0
start_gateway "$T/gw.conf"
check "before: certificate A presented" "$FP_A" "$(presented)"

# A client holding one connection across the first rotation (A -> B).
cat >"$T/client.py" <<'PY'
import hashlib, socket, ssl, sys, os, time
port, pki, cas, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cas)
ctx.load_cert_chain(pki + "/alice.crt", pki + "/alice.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
def req(path):
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return "CLOSED"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    while n and len(body) < n[0]:
        body += s.recv(65536)
    return head.split(b" ")[1].decode()
print("first", req(b"/public/held1"), flush=True)
open(flag + ".ready", "w").close()
for _ in range(200):
    if os.path.exists(flag + ".go"):
        break
    time.sleep(0.05)
print("second", req(b"/public/held2"), flush=True)
der = s.getpeercert(binary_form=True)
print("peer", ":".join("%02X" % b for b in hashlib.sha256(der).digest()), flush=True)
PY
python3 "$T/client.py" "$GW_PORT" "$PKI" "$T/server-cas.pem" "$T/held" >"$T/held.out" 2>&1 &
held=$!
PIDS+=("$held")
wait_file "$T/held.ready" 50

lg() {
	"$LG" --url "https://localhost:$GW_PORT/public/load" \
		--ca "$T/server-cas.pem" --cert "$PKI/alice.crt" --key "$PKI/alice.key" \
		-d 14s --timeout 10s --json "$@"
}
lg -c 4 >"$T/lg-ka.json" 2>"$T/lg-ka.log" &
lg_ka=$!
lg -c 4 --new-conn >"$T/lg-nc.json" 2>"$T/lg-nc.log" &
lg_nc=$!
PIDS+=("$lg_ka" "$lg_nc")
sleep 1

bad=0
for i in $(seq 1 10); do
	gen_files "$i"
	kill -HUP "$GW_PID"
	if ! wait_log "generation $((i + 1)) in service"; then
		fail "reload $i: generation $((i + 1)) not in service"
		continue
	fi
	[ "$i" == 1 ] && touch "$T/held.go"
	# Every rule of generation i holds, and none of i-1 that it dropped.
	body=$(req bob "/gen$i/x")
	[ "$(json_get "$body" path)" == "/rw$i/x" ] || { bad=$((bad + 1)); echo "reload $i: route: $body"; }
	if ((i > 1)); then
		got=$(status bob "/gen$((i - 1))/x")
		[ "$got" == 403 ] || { bad=$((bad + 1)); echo "reload $i: old rule: $got"; }
	fi
	want_rev=$((i % 2 ? 200 : 0))
	got=$(status revoked /public/r)
	[ "$((10#$got))" == "$want_rev" ] || { bad=$((bad + 1)); echo "reload $i: CRL: $got"; }
	want_fp=$FP_A
	((i % 2)) && want_fp=$FP_B
	got=$(presented)
	[ "$got" == "$want_fp" ] || { bad=$((bad + 1)); echo "reload $i: certificate: $got"; }
done
check "10 reloads: routes, policy, CRL and certificate of each generation in force" 0 "$bad"
check "11 generations" 1 "$(grep -c "generation 11 in service" "$T/gateway.log")"

wait "$held"
out=$(cat "$T/held.out")
check_contains "held connection: answered before the rotation" "first 200" "$out"
check_contains "held connection: answered after the rotation" "second 200" "$out"
check_contains "held connection: still has certificate A" "peer $FP_A" "$out"

wait "$lg_ka"
wait "$lg_nc"
jq_py() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>&1
}
for k in ka nc; do
	check "load ($k): zero failed requests" 0 "$(jq_py "$T/lg-$k.json" 'j["errors"]["total"]')"
	check "load ($k): every response 2xx" True "$(jq_py "$T/lg-$k.json" 'j["ok"] == j["responses"] == j["requests"] > 100')"
done

# ---- refused reloads: the old generation keeps serving ----
cp "$L/server.key" "$T/keep.key"
put "$PKI/gw-client.key" "$L/server.key"
kill -HUP "$GW_PID"
wait_log "reload failed: keeping generation 11"
check "mismatched key: reload refused" 0 $?
check_contains "mismatched key: file and reason" "$L/server.key: key does not match certificate $L/server.crt" "$(grep 'reload:' "$T/gateway.log")"
check "mismatched key: still serving" 200 "$(status alice /public/a)"
check "mismatched key: still certificate A" "$FP_A" "$(presented)"
put "$T/keep.key" "$L/server.key"

echo "garbage" >"$T/bad.pem"
put "$T/bad.pem" "$L/crl.pem"
before=$(grep -c "reload failed" "$T/gateway.log")
kill -HUP "$GW_PID"
for ((i = 0; i < 100; i++)); do
	[ "$(grep -c "reload failed" "$T/gateway.log")" -gt "$before" ] && break
	sleep 0.05
done
check_contains "corrupt CRL: file and reason" "$L/crl.pem: cannot parse CRL" "$(grep 'reload:' "$T/gateway.log")"
check "corrupt CRL: still generation 11" 0 "$(grep -c "generation 12 in service" "$T/gateway.log")"
check "corrupt CRL: still serving" 200 "$(status alice /public/a)"
check "corrupt CRL: old CRL still revokes" 000 "$(status revoked /public/a)"
finish
