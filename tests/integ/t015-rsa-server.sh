#!/usr/bin/env bash
# t015: an RSA server certificate works as well as ECDSA, with ECDHE + AEAD suites only
# under TLS 1.2, and ALPN settles on http/1.1.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
write_config "$T/gw.conf"
sed -i "s|$PKI/server.crt|$PKI/server-rsa.crt|; s|$PKI/server.key|$PKI/server-rsa.key|" "$T/gw.conf"
start_gateway "$T/gw.conf"

check "RSA listener serves a verified client" 200 "$(gw_status alice /public/x)"
out=$(openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost -CAfile "$PKI/server-ca.crt" \
	-cert "$PKI/alice.crt" -key "$PKI/alice.key" -tls1_2 -alpn http/1.1 </dev/null 2>&1)
check_contains "TLS 1.2 with an RSA certificate negotiates ECDHE-RSA with GCM or ChaCha20" "Cipher is ECDHE-RSA-" "$out"
check_not_contains "no CBC suite" "-SHA
" "$(grep 'Cipher is' <<<"$out")"
check_contains "ALPN http/1.1" "ALPN protocol: http/1.1" "$out"
check_contains "server certificate verified" "Verify return code: 0 (ok)" "$out"
out=$(openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost -CAfile "$PKI/server-ca.crt" \
	-cert "$PKI/alice.crt" -key "$PKI/alice.key" -tls1_2 -cipher 'AES128-GCM-SHA256' </dev/null 2>&1)
check_contains "TLS 1.2 without ECDHE refused" "Cipher is (NONE)" "$out"
out=$(openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost -CAfile "$PKI/server-ca.crt" \
	-cert "$PKI/alice.crt" -key "$PKI/alice.key" -tls1_3 </dev/null 2>&1)
check_contains "TLS 1.3 with an RSA certificate" "TLSv1.3" "$out"
out=$(openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost -CAfile "$PKI/server-ca.crt" \
	-cert "$PKI/alice.crt" -key "$PKI/alice.key" -alpn h2 </dev/null 2>&1)
check_contains "ALPN offering only h2 is refused" "no application protocol" "$out"
finish
