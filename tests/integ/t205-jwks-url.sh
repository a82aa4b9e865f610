#!/usr/bin/env bash
# t205: an issuer whose JWKS the gateway fetches itself over HTTPS (jwks_url). The
# identity provider is a small python3 TLS server on 127.0.0.1 with its own CA; the URL
# names idp.test and jwks_address says where to connect, so the certificate is verified
# against jwks_ca and the name idp.test. Covers: no keys until the first fetch (401,
# /readyz 503, a clear log line), key rotation picked up through the rate-limited
# unknown-kid refetch, failed fetches (500, garbage, oversize, wrong certificate) never
# replacing good keys, and a flood of bogus kids causing at most two fetches.
source "$(dirname "$0")/lib.sh"
MKTOKEN=$GW_BUILD/tests/tools/gw_mktoken
make_pki
start_backend b1
IDP=$T/idp
mkdir -p "$IDP"

# ---- the identity provider's PKI: its CA, a good certificate and two bad ones ----
q() { "$@" >/dev/null 2>&1 || fail "command failed: $*"; }
ec() { printf '%s' "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"; }
# shellcheck disable=SC2046
q openssl req -x509 $(ec) -keyout "$IDP/ca.key" -out "$IDP/ca.crt" -days 30 -subj "/CN=IdP Test CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
leaf() { # NAME DNS [self]
	# shellcheck disable=SC2046
	q openssl req $(ec) -keyout "$IDP/$1.key" -out "$IDP/$1.csr" -subj "/CN=$2"
	printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$2" >"$IDP/$1.ext"
	if [ "${3:-}" = self ]; then
		q openssl x509 -req -in "$IDP/$1.csr" -signkey "$IDP/$1.key" -out "$IDP/$1.crt" -days 30 -extfile "$IDP/$1.ext"
	else
		q openssl x509 -req -in "$IDP/$1.csr" -CA "$IDP/ca.crt" -CAkey "$IDP/ca.key" -CAcreateserial \
			-out "$IDP/$1.crt" -days 30 -extfile "$IDP/$1.ext"
	fi
}
leaf good idp.test
leaf selfsigned idp.test self
leaf wrongname other.test

# The IdP: GET anything answers according to $IDP/mode; every request is one line in
# $IDP/requests (so the test counts fetches).
cat >"$IDP/idp.py" <<'EOF'
import http.server, os, ssl, sys
root, port, cert = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        with open(os.path.join(root, "requests"), "a") as f:
            f.write(self.path + "\n")
        try:
            mode = open(os.path.join(root, "mode")).read().strip()
        except OSError:
            mode = "ok"
        code, length, body = 200, True, b""
        if mode == "500":
            code, body = 500, b'{"error":"boom"}'
        elif mode == "garbage":
            body = b"<html>this is not a key set</html>"
        elif mode == "bigcl":
            body = b" " * (2 * 1024 * 1024)
        elif mode == "bigstream":
            body, length = b" " * (2 * 1024 * 1024), False
        else:
            body = open(os.path.join(root, "jwks.json"), "rb").read()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(body)
        except OSError:
            pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert + ".crt", cert + ".key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
srv.serve_forever()
EOF
IDP_PORT=$(free_port)
IDP_PID=
# idp_start CERTNAME: (re)starts the IdP on IDP_PORT with that certificate.
idp_start() {
	[ -n "$IDP_PID" ] && stop_pid "$IDP_PID"
	python3 "$IDP/idp.py" "$IDP" "$IDP_PORT" "$IDP/$1" >>"$T/idp.log" 2>&1 &
	IDP_PID=$!
	PIDS+=("$IDP_PID")
	local i
	for ((i = 0; i < 50; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$IDP_PORT") 2>/dev/null && return 0
		sleep 0.1
	done
	fail "IdP did not start"
}
idp_requests() { if [ -f "$IDP/requests" ]; then wc -l <"$IDP/requests"; else echo 0; fi; }

# ---- tokens: k1 (served first), k2 (after rotation), and bogus kids ----
now=$(date +%s)
claims='{"iss":"https://idp.test","aud":"gateway","sub":"user-1","scope":"orders:read","exp":'$((now + 600))'}'
tok1=$("$MKTOKEN" --alg ES256 --kid k1 --jwks "$T/jwks1.json" --claims "$claims")
tok2=$("$MKTOKEN" --alg ES256 --kid k2 --jwks "$T/jwks2.json" --claims "$claims")
# Well-formed tokens of the right issuer whose kids no key has, one per line (python3
# starts slowly here, so they are made in one go).
mapfile -t bogus < <(python3 - "$claims" <<'EOF'
import base64, random, sys
b = lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")
for i in range(60):
    kid = "bogus-%d-%08x" % (i, random.getrandbits(32))
    print(b('{"alg":"ES256","kid":"%s"}' % kid) + "." + b(sys.argv[1]) + "." + "A" * 86)
EOF
)
[ "${#bogus[@]}" -eq 60 ] || fail "bogus tokens not made"
n_probe=50
cp "$T/jwks1.json" "$IDP/jwks.json"

EXTRA_TOP="admin = { address = \"127.0.0.1:0\"; };
issuers = ( { name = \"idp\"; issuer = \"https://idp.test\"; audience = \"gateway\";
  jwks_url = \"https://idp.test:$IDP_PORT/jwks.json\"; jwks_ca = \"$IDP/ca.crt\";
  jwks_address = \"127.0.0.1:$IDP_PORT\"; jwks_refresh = 300; jwks_min_refetch = 1; jwks_timeout = 2; } );"
ROUTES='{ prefix = "/api"; cluster = "app"; need = "cert+token"; }, { prefix = "/"; cluster = "app"; }'
write_config "$T/gw.conf"
check "configuration with jwks_url is valid" 0 "$("$GATEWAYD" -t -c "$T/gw.conf" >/dev/null 2>&1; echo $?)"

bearer() { echo "Authorization: Bearer $1"; }
# wait_status EXPECTED TOKEN [TENTHS]: bounded wait until a request with TOKEN gets EXPECTED.
wait_status() {
	local i st
	for ((i = 0; i < ${3:-50}; i++)); do
		st=$(gw_status alice /api/x -H "$(bearer "$2")")
		[ "$st" = "$1" ] && break
		sleep 0.1
	done
	echo "$st"
}
# wait_log TEXT [TENTHS]: bounded wait until the gateway log contains TEXT; prints it.
wait_log() {
	local i
	for ((i = 0; i < ${2:-50}; i++)); do
		grep -F -q -- "$1" "$T/gateway.log" && break
		sleep 0.1
	done
	grep -F -m1 -o -- "$1" "$T/gateway.log"
}
readyz() {
	local admin
	admin=$(sed -n 's/^admin //p' "$T/gw.ready")
	curl -s -o /dev/null -w '%{http_code}' "http://$admin/readyz"
}

# ---- start-up with the IdP down: no keys, refused, not ready, logged clearly ----
start_gateway "$T/gw.conf"
check_contains "first fetch failure is logged" "fetch failed: connect: Connection refused; issuer idp has no keys yet" \
	"$(wait_log "fetch failed: connect: Connection refused; issuer idp has no keys yet")"
check "no keys yet: token refused" 401 "$(gw_status alice /api/x -H "$(bearer "$tok1")")"
check "no keys yet: /readyz is 503" 503 "$(readyz)"
check "cert-only route still served" 200 "$(gw_status alice /public/x)"

# ---- the IdP comes up: the retry fetches k1 ----
idp_start good
check "k1 token accepted once the IdP answers" 200 "$(wait_status 200 "$tok1" 100)"
check "/readyz is 200 with keys" 200 "$(readyz)"

# ---- rotation: the IdP serves k2 only ----
cp "$T/jwks2.json" "$IDP/jwks.json"
sleep 1.1 # past jwks_min_refetch since the last fetch
check "k2 token before the refetch: 401" 401 "$(gw_status alice /api/x -H "$(bearer "$tok2")")"
check "k2 token after the unknown-kid refetch: 200" 200 "$(wait_status 200 "$tok2" 50)"
check "k1 token after the rotation: 401" 401 "$(gw_status alice /api/x -H "$(bearer "$tok1")")"
check_contains "refetch is logged" "refetching for an unknown kid" "$(cat "$T/gateway.log")"

# ---- failed fetches keep the good keys and say why ----
# trigger_fetch TEXT: after the rate limit window, an unknown kid asks for a fetch; waits
# for TEXT in the log.
trigger_fetch() {
	sleep 1.1
	check "unknown kid is refused" 401 "$(gw_status alice /api/x -H "$(bearer "${bogus[n_probe]}")")"
	n_probe=$((n_probe + 1))
	check_contains "log says why the fetch failed: $1" "$1" "$(wait_log "$1" 50)"
	check "k2 token still accepted" 200 "$(gw_status alice /api/x -H "$(bearer "$tok2")")"
}
echo 500 >"$IDP/mode"
trigger_fetch "fetch failed: HTTP status 500; keeping the previous key set"
echo garbage >"$IDP/mode"
trigger_fetch "fetch failed: not a usable key set"
echo bigcl >"$IDP/mode"
trigger_fetch "is over the 1048576 byte limit"
echo bigstream >"$IDP/mode"
trigger_fetch "fetch failed: document over the 1048576 byte limit"
echo ok >"$IDP/mode"
idp_start selfsigned
trigger_fetch "fetch failed: TLS with idp.test: self-signed certificate"
idp_start wrongname
trigger_fetch "fetch failed: TLS with idp.test: hostname mismatch"

# ---- a flood of bogus kids: at most one fetch per jwks_min_refetch ----
idp_start good
# One good fetch first: it ends the failure backoff, so no retry falls into the count.
sleep 1.1
before=$(idp_requests)
gw_status alice /api/x -H "$(bearer "${bogus[n_probe]}")" >/dev/null
for ((i = 0; i < 50; i++)); do
	[ "$(idp_requests)" -gt "$before" ] && break
	sleep 0.1
done
sleep 1.2
before=$(idp_requests)
log_mark=$(($(wc -l <"$T/gateway.log") + 1))
curl_args=()
for i in $(seq 1 50); do
	[ "$i" -gt 1 ] && curl_args+=(--next)
	curl_args+=(-sS --max-time 10 --cacert "$PKI/server-ca.crt" --cert "$PKI/alice.crt" --key "$PKI/alice.key"
		--resolve "localhost:$GW_PORT:127.0.0.1" -o /dev/null -w '%{http_code}\n'
		-H "$(bearer "${bogus[i - 1]}")" "https://localhost:$GW_PORT/api/x")
done
t0=$(date +%s%N)
codes=$(curl "${curl_args[@]}" 2>/dev/null | sort | uniq -c | tr -s ' ')
t1=$(date +%s%N)
check "50 bogus kids: all 401" " 50 401" "$codes"
echo "flood took $(((t1 - t0) / 1000000)) ms"
sleep 2.5 # the deferred fetch of the window happens, nothing after it
fetches=$(($(idp_requests) - before))
check "50 bogus kids caused 1 or 2 fetches" 1 "$([ "$fetches" -ge 1 ] && [ "$fetches" -le 2 ] && echo 1 || echo "$fetches")"
# Every bogus kid but those (at most two) that started a fetch at once is counted in the
# log as suppressed.
suppressed=$(tail -n +"$log_mark" "$T/gateway.log" | grep -o '([0-9]* more unknown-kid request(s) suppressed' |
	tr -dc '0-9\n' | awk '{ n += $1 } END { print n + 0 }')
check "the log counts the suppressed requests (48 to 50)" 1 \
	"$([ "$suppressed" -ge 48 ] && [ "$suppressed" -le 50 ] && echo 1 || echo "$suppressed")"
check "k2 token still accepted after the flood" 200 "$(gw_status alice /api/x -H "$(bearer "$tok2")")"

# ---- SIGHUP reuses the cached key set: no fetch needed ----
before=$(idp_requests)
reloads=$(grep -c "reload: generation" "$T/gateway.log")
kill -HUP "$GW_PID"
for ((i = 0; i < 50; i++)); do
	[ "$(grep -c "reload: generation" "$T/gateway.log")" -gt "$reloads" ] && break
	sleep 0.1
done
check "SIGHUP reload succeeded" 1 "$(($(grep -c "reload: generation" "$T/gateway.log") - reloads))"
check "after SIGHUP the fetched keys are still in service" 200 "$(gw_status alice /api/x -H "$(bearer "$tok2")")"
check "SIGHUP did not fetch" "$before" "$(idp_requests)"
check_not_contains "no token text in the gateway log" "${tok2:0:40}" "$(cat "$T/gateway.log")"
finish
