#!/usr/bin/env bash
# t010: a bad client certificate fails the TLS handshake itself (no HTTP answer), the
# reason is logged and audited; TLS 1.0/1.1 are refused.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

check "valid certificate gets through" 200 "$(gw_status alice /public/x)"
check "certificate via intermediate gets through" 200 "$(gw_curl - /public/x --cert "$PKI/chain-full.crt" --key "$PKI/chain.key" -o /dev/null -w '%{http_code}' 2>/dev/null)"

# Each bad certificate: no HTTP status at all (000), and the reason in the audit log.
for case in "-:no_cert" "untrusted:unknown_ca" "expired:expired" "notyet:not_yet_valid" \
	"revoked:revoked" "selfsigned:self_signed" "leafca:leaf_is_ca" "badeku:bad_eku"; do
	who=${case%%:*}
	reason=${case##*:}
	before=$(grep -c "\"reason\":\"$reason\"" "$T/audit.log" 2>/dev/null)
	check "$who: handshake refused" 000 "$(gw_status "$who" /public/x)"
	sleep 0.2
	after=$(grep -c "\"reason\":\"$reason\"" "$T/audit.log" 2>/dev/null)
	check "$who: audited as $reason" 1 "$((after - before))"
	check_contains "$who: logged as $reason" "failed: $reason" "$(cat "$T/gateway.log")"
done

# openssl s_client with the right certificate completes; with TLS 1.1 it cannot.
out=$(openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost -CAfile "$PKI/server-ca.crt" \
	-cert "$PKI/alice.crt" -key "$PKI/alice.key" -tls1_2 </dev/null 2>&1)
check_contains "s_client TLS 1.2 verifies the gateway" "Verify return code: 0 (ok)" "$out"
for v in tls1 tls1_1; do
	out=$(openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost -cert "$PKI/alice.crt" \
		-key "$PKI/alice.key" -$v -cipher 'DEFAULT:@SECLEVEL=0' </dev/null 2>&1)
	check_contains "$v refused: no cipher agreed" "Cipher is (NONE)" "$out"
	check_contains "$v refused: gateway logged it" "unsupported protocol" "$(tail -n 3 "$T/gateway.log")"
done
# A TLS 1.2 client offering only CBC suites finds no common cipher.
out=$(openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost -cert "$PKI/alice.crt" \
	-key "$PKI/alice.key" -tls1_2 -cipher 'ECDHE-ECDSA-AES128-SHA' </dev/null 2>&1)
check_contains "CBC-only TLS 1.2 client refused" "handshake failure" "$out"
finish
