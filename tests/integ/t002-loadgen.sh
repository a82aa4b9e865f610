#!/usr/bin/env bash
# t002-loadgen: gw_loadgen presents a client certificate, parses responses and counts
# outcomes correctly. The peer is `openssl s_server -www -Verify 1`, which answers a GET
# with an HTTP/1.0 page delimited by EOF and then closes: every request is therefore a new
# TLS connection, and the EOF-delimited body path of the parser is exercised too.
. "$(dirname "$0")/lib.sh"

LG=$GW_BUILD/bench/gw_loadgen
if [ ! -x "$LG" ]; then
	echo "FAIL: $LG not built (cmake --build ... --target gw_loadgen)"
	exit 1
fi
make_pki

port=$(free_port)
openssl s_server -accept "127.0.0.1:$port" -cert "$PKI/server.crt" -key "$PKI/server.key" \
	-CAfile "$PKI/client-cas.pem" -Verify 1 -www -quiet </dev/null >"$T/s_server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" \
		2>/dev/null && break
	sleep 0.1
done

url="https://127.0.0.1:$port/"
# lg NAME ARGS...: run the generator against s_server; JSON in $T/NAME.json, exit in RC.
lg() {
	local name=$1
	shift
	RC=0
	"$LG" --url "$url" --ca "$PKI/server-ca.crt" --timeout 5s --json "$@" >"$T/$name.json" \
		2>"$T/lg-$name.log" || RC=$?
}
# jq_py NAME EXPR: a Python expression over the parsed JSON document `j`.
jq_py() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$T/$1.json" "$2" 2>&1
}
alice=(--cert "$PKI/alice.crt" --key "$PKI/alice.key")

# 1. With a client certificate: 200 requests, all 2xx, no error of any kind.
lg ok "${alice[@]}" -n 200 -c 4
check "mtls run exits 0" 0 "$RC"
check "mtls requests, ok, errors" "200 200 0" \
	"$(jq_py ok '" ".join(str(x) for x in (j["requests"], j["ok"], j["errors"]["total"]))')"
check "mtls latency samples" 200 "$(jq_py ok 'j["latency_us"]["count"]')"

# 2. --new-conn over TLS 1.2 with --resume: same counts, and sessions get resumed.
lg nc "${alice[@]}" -n 50 -c 2 --new-conn --resume --tls12
check "new-conn run exits 0" 0 "$RC"
check "new-conn ok, errors, handshakes" "50 0 50" \
	"$(jq_py nc '" ".join(str(x) for x in (j["ok"], j["errors"]["total"], j["handshakes"]))')"
check "new-conn resumes sessions" True "$(jq_py nc 'j["resumed"] > 0')"

# 3. Without a client certificate every request fails, as a TLS error (TLS 1.3 reports
#    the rejection as an alert on the first read, TLS 1.2 in the handshake).
for v in tls13 tls12; do
	lg "nocert-$v" -n 50 -c 2 --"$v"
	check "no cert ($v) exits 1" 1 "$RC"
	check "no cert ($v) requests, ok, tls errors, all errors" "50 0 50 50" \
		"$(jq_py "nocert-$v" '" ".join(str(x) for x in (j["requests"], j["ok"], j["errors"]["tls"], j["errors"]["total"]))')"
done

# 4. Bad options exit 2.
RC=0
"$LG" --url "$url" --no-such-option >/dev/null 2>&1 || RC=$?
check "bad option exits 2" 2 "$RC"
RC=0
"$LG" --url "http://127.0.0.1:$port/" -n 1 >/dev/null 2>&1 || RC=$?
check "non-https url exits 2" 2 "$RC"

finish
