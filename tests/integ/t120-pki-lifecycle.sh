#!/usr/bin/env bash
# t120: `gatewayctl pki` end to end. init a CA, issue a server certificate for the gateway
# and client certificates; the gateway (client_ca and crl from the CA directory) accepts
# them; revoke one, regenerate the CRL, SIGHUP: that certificate's new handshakes fail
# with reason "revoked" while the others keep working; list and inspect tell the truth
# (identity as the gateway derives it, and the prefixes it may reach under the config).
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
CA=$T/ca
ctl() { "$GATEWAYCTL" pki "$@"; }

# ca_status NAME PATH: mTLS request with the CA-issued certificate NAME (000 = refused).
ca_status() {
	curl -sS --max-time 10 -o /dev/null -w '%{http_code}' --cacert "$CA/ca.crt" \
		--cert "$CA/issued/$1.crt" --key "$CA/issued/$1.key" \
		--resolve "localhost:$GW_PORT:127.0.0.1" "https://localhost:$GW_PORT$2" 2>/dev/null
}

# wait_log TEXT: bounded wait (5 s) for TEXT in the gateway log.
wait_log() {
	local i
	for ((i = 0; i < 50; i++)); do
		grep -qF -- "$1" "$T/gateway.log" && return 0
		sleep 0.1
	done
	return 1
}

out=$(ctl init --dir "$CA" --cn "t120 CA" 2>&1)
check "init succeeds" 0 $?
check_contains "init names the files" "ca.key (0600)" "$out"
check "CA key is 0600" 600 "$(stat -c %a "$CA/ca.key")"
out=$(ctl init --dir "$CA" 2>&1)
check "a second init is refused" 1 $?
check_contains "second init: why" "already exists" "$out"

ctl issue --dir "$CA" --cn localhost --server --dns localhost >/dev/null
check "issue server certificate" 0 $?
ctl issue --dir "$CA" --cn alice >"$T/alice.out"
check "issue alice" 0 $?
ctl issue --dir "$CA" --cn bob >/dev/null
ctl issue --dir "$CA" --cn web --spiffe spiffe://example.org/ns/prod/sa/web >/dev/null
check "issue web (SPIFFE)" 0 $?
check "client key is 0600" 600 "$(stat -c %a "$CA/issued/alice.key")"
out=$(ctl issue --dir "$CA" --cn web --spiffe "spiffe://Example.org/x" 2>&1)
check "an invalid SPIFFE ID is refused" 1 $?
alice_serial=$(sed -n 's/^serial *//p' "$T/alice.out")
check "issue prints a 32-digit serial" 32 "${#alice_serial}"
openssl x509 -in "$CA/issued/alice.crt" -noout -ext extendedKeyUsage,keyUsage,basicConstraints \
	>"$T/alice.ext" 2>&1
check_contains "client EKU" "TLS Web Client Authentication" "$(cat "$T/alice.ext")"
check_contains "client is not a CA" "CA:FALSE" "$(cat "$T/alice.ext")"

# The gateway: its server certificate and its client trust come from the CA directory.
write_config "$T/gw.conf"
sed -i -e "s|\"$PKI/server.crt\"|\"$CA/issued/localhost.crt\"|" \
	-e "s|\"$PKI/server.key\"|\"$CA/issued/localhost.key\"|" \
	-e "s|\"$PKI/client-cas.pem\"|\"$CA/ca.crt\"|" \
	-e "s|\"$PKI/crls.pem\"|\"$CA/crl.pem\"|" "$T/gw.conf"
start_gateway "$T/gw.conf"
check "alice accepted" 200 "$(ca_status alice /public/a)"
check "bob accepted" 200 "$(ca_status bob /public/a)"
check "web accepted by SPIFFE ID" 200 "$(ca_status web /api/x)"
check "mkpki's alice (other CA) refused" 000 "$(gw_status alice /public/a)"

# Revoke alice (by file), then the CRL; nothing changes before the reload.
out=$(ctl revoke --dir "$CA" "$CA/issued/alice.crt" --reason keyCompromise 2>&1)
check "revoke succeeds" 0 $?
check_contains "revoke names the serial" "revoked $alice_serial (keyCompromise)" "$out"
out=$(ctl revoke --dir "$CA" "$alice_serial" 2>&1)
check "revoking twice is refused" 1 $?
ctl crl --dir "$CA" --days 7 >/dev/null
check "crl succeeds" 0 $?
check_contains "CRL lists alice" "Key Compromise" "$(openssl crl -in "$CA/crl.pem" -noout -text)"
check "before the reload alice still works" 200 "$(ca_status alice /public/a)"

kill -HUP "$GW_PID"
wait_log "generation 2 in service"
check "reload applied" 0 $?
check "revoked alice: new handshake refused" 000 "$(ca_status alice /public/a)"
check_contains "audit: handshake refused as revoked" '"reason":"revoked"' "$(cat "$T/audit.log")"
check "bob unaffected" 200 "$(ca_status bob /public/a)"
check "web unaffected" 200 "$(ca_status web /api/x)"

list=$(ctl list --dir "$CA")
check_contains "list: alice revoked" "$alice_serial   revoked" "$list"
check "list: three valid" 3 "$(grep -c ' valid ' <<<"$list")"

# inspect: the identity as the gateway derives it, and where it may go under gw.conf.
out=$(ctl inspect "$CA/issued/alice.crt" -c "$T/gw.conf" 2>&1)
check "inspect succeeds" 0 $?
check_contains "inspect: identity" "identity     alice" "$out"
check_contains "inspect: serial" "serial       $alice_serial" "$out"
check_contains "inspect: fingerprint" "sha256       $(openssl x509 -in "$CA/issued/alice.crt" -outform DER | sha256sum | cut -c1-64)" "$out"
check_contains "inspect: reaches /public" "reach        /public  all methods  (route / -> cluster app)" "$out"
check_contains "inspect: reaches /api" "reach        /api  all methods" "$out"
check_contains "inspect: but not /api/admin" "denied       /api/admin" "$out"
check_not_contains "inspect: not /admin" "/admin  all" "$out"
out=$(ctl inspect "$CA/issued/web.crt" -c "$T/gw.conf" 2>&1)
check_contains "inspect web: SPIFFE identity" "identity     spiffe://example.org/ns/prod/sa/web" "$out"
check_contains "inspect web: reaches /api" "reach        /api  all methods" "$out"
check_not_contains "inspect web: not /public" "reach        /public" "$out"
out=$(ctl inspect "$CA/issued/localhost.crt" 2>&1)
check_contains "inspect server cert: refused as a client" "refused at the handshake: bad_eku" "$out"
finish
