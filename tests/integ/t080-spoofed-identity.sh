#!/usr/bin/env bash
# t080: the backend trusts the identity headers because only the gateway can set them.
# Whatever a client sends under those names (or names a CGI-style backend would read as
# them) never arrives; hop-by-hop headers stop at the gateway; response headers pass;
# a certificate verified for one name (SNI) cannot be used to address another (Host).
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
ROUTES='{ prefix = "/"; cluster = "app"; }'
WORKERS=1
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

# hdr JSON NAME: one header as the backend received it (names are lower-cased there).
hdr() {
	json_get "$(json_get "$1" headers)" "$2"
}

# backend_requests: requests the backend has served (fetched directly).
backend_requests() {
	json_get "$(backend_stats b1)" requests
}

fp=$(openssl x509 -in "$PKI/alice.crt" -outform DER | sha256sum | cut -d' ' -f1)
body=$(gw_curl alice /public/spoof \
	-H 'X-Client-Identity: admin' -H 'X-Client-Cn: SPOOFED-cn' \
	-H 'X-Client-Spiffe-Id: spiffe://SPOOFED/admin' -H 'X-Client-Cert-Sha256: SPOOFED-fp' \
	-H 'X-Client-Cert-Serial: SPOOFED-serial' -H 'X-Forwarded-For: 1.2.3.4' \
	-H 'X-Forwarded-Proto: SPOOFED-http' -H 'X-Forwarded-Host: SPOOFED.host' \
	-H 'X-Forwarded-Client-Cert: By=SPOOFED;Hash=00' -H 'Forwarded: for=1.2.3.4;by=SPOOFED' \
	-H 'X-Request-Id: SPOOFED-id' -H 'X-Real-Ip: 1.2.3.4' -H 'X-Ssl-Client-Verify: SPOOFED')
check "spoof request reached the backend" "/public/spoof" "$(json_get "$body" path)"
check "identity is the verified one" "alice" "$(hdr "$body" x-client-identity)"
check "CN is the verified one" "alice" "$(hdr "$body" x-client-cn)"
check "fingerprint is the real certificate's" "$fp" "$(hdr "$body" x-client-cert-sha256)"
check "no SPIFFE id for a certificate without one" "null" "$(hdr "$body" x-client-spiffe-id)"
check "X-Forwarded-For is the real peer only" "127.0.0.1" "$(hdr "$body" x-forwarded-for)"
check "X-Forwarded-Proto set by the gateway" "https" "$(hdr "$body" x-forwarded-proto)"
check "X-Forwarded-Host dropped" "null" "$(hdr "$body" x-forwarded-host)"
check "X-Forwarded-Client-Cert dropped" "null" "$(hdr "$body" x-forwarded-client-cert)"
check "Forwarded dropped" "null" "$(hdr "$body" forwarded)"
check "X-Real-Ip dropped" "null" "$(hdr "$body" x-real-ip)"
check "X-Ssl-Client-Verify dropped" "null" "$(hdr "$body" x-ssl-client-verify)"
check_not_contains "no spoofed value anywhere in what the backend saw" "SPOOFED" "$body"
check_not_contains "1.2.3.4 nowhere in what the backend saw" "1.2.3.4" "$body"
rid=$(hdr "$body" x-request-id)
CHECKS=$((CHECKS + 1))
if [[ "$rid" =~ ^[0-9a-f]{16,}$ ]]; then pass "request id is the gateway's ($rid)"; else fail "request id [$rid]"; fi
check "that request id is the audited one" "/public/spoof" "$(json_get "$(audit_record "$rid")" path)"

# A SPIFFE identity: the header carries the verified URI, not the client's.
body=$(gw_curl web /api/spoof -H 'X-Client-Spiffe-Id: spiffe://example.org/ns/prod/sa/admin' \
	-H 'X-Client-Identity: spiffe://example.org/ns/prod/sa/admin')
check "SPIFFE id is the verified one" "spiffe://example.org/ns/prod/sa/web" "$(hdr "$body" x-client-spiffe-id)"
check_not_contains "spoofed SPIFFE id nowhere" "sa/admin" "$body"

# Identity headers in a chunked body's trailer section never reach the backend either.
if [ -x "$TESTCLIENT" ]; then
	res=$(testclient --responses 1 --dump --send-str 'POST /public/trailer HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Client-Identity: admin\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n' 2>"$T/trailer.out")
	check "trailer request answered 200" 1 "$(printf '%s\n' "$res" | grep -c '^STATUS 200$')"
	body=$(grep '^{' "$T/trailer.out" | head -n1)
	check "trailer request: body arrived" 5 "$(json_get "$body" body_bytes)"
	check "trailer request: identity still alice" "alice" "$(hdr "$body" x-client-identity)"
	check_not_contains "trailer request: spoofed trailer values nowhere" "1.2.3.4" "$body"
	check_not_contains "trailer request: admin nowhere" "admin" "$body"
fi

# Underscore aliases of identity headers are refused outright, before any backend.
before=$(backend_requests)
check "X_Client_Identity alias refused" 400 "$(gw_status alice /public/alias -H 'X_Client_Identity: admin')"
check "x_forwarded_for alias refused" 400 "$(gw_status alice /public/alias -H 'x_forwarded_for: 1.2.3.4')"
check "X-Client_Cn (mixed) alias refused" 400 "$(gw_status alice /public/alias -H 'X-Client_Cn: admin')"
r=$(gw_curl alice /public/alias -H 'X_Client_Identity: admin')
check "alias refusal is the gateway's JSON" "identity_header_alias" "$(json_get "$r" reason)"
check "the backend saw none of the alias requests" "$before" "$(backend_requests)"
body=$(gw_curl alice /public/underscore -H 'X_Custom_Thing: 1')
check "an unrelated underscore header is passed through" "1" "$(hdr "$body" x_custom_thing)"

# Hop-by-hop headers, including one named by Connection, stop at the gateway.
body=$(gw_curl alice /public/hop -H 'Connection: X-Foo' -H 'X-Foo: bar' -H 'Keep-Alive: timeout=99' \
	-H 'TE: trailers' -H 'Proxy-Connection: keep-alive' -H 'X-Kept: yes')
keys=$(python3 -c 'import json,sys; print(" ".join(sorted(json.loads(sys.argv[1])["headers"])))' "$body")
for h in connection x-foo keep-alive te proxy-connection; do
	check_not_contains "hop-by-hop $h not forwarded" " $h " " $keys "
done
check "an end-to-end header is forwarded" "yes" "$(hdr "$body" x-kept)"

# Connection: close from the client ends the client connection, not the pooled upstream
# one: the backend's connection keeps counting across the three requests.
n1=$(json_get "$(gw_curl alice /public/c1)" conn_requests)
gw_curl alice /public/c2 -H 'Connection: close' -D "$T/c2.h" -o "$T/c2.json"
n3=$(json_get "$(gw_curl alice /public/c3)" conn_requests)
check "Connection: close not forwarded" "null" "$(hdr "$(cat "$T/c2.json")" connection)"
check_contains "client was told the connection closes" "connection: close" "$(tr -d '\r' <"$T/c2.h" | tr '[:upper:]' '[:lower:]')"
check "upstream connection survived the client's close" "$((n1 + 2))" "$n3"

# Response headers from the backend reach the client.
hdrs=$(gw_curl alice /public/resp -D - -o /dev/null | tr -d '\r')
check_contains "backend response header reaches the client" "X-Backend: b1" "$hdrs"
check_contains "content type passes" "Content-Type: application/json" "$hdrs"

# SNI and Host must agree (port and case aside).
check "Host with port and other case is fine" 200 "$(gw_status alice /public/host -H "Host: LOCALHOST:$GW_PORT")"
before=$(backend_requests)
check "SNI localhost, Host evil.test -> 421" 421 "$(gw_status alice /public/host -H 'Host: evil.test')"
r=$(gw_curl alice /public/host -H 'Host: evil.test')
check "421 body names the mismatch" "sni_host_mismatch" "$(json_get "$r" reason)"
if [ -x "$TESTCLIENT" ]; then
	res=$(testclient --responses 1 --send-str 'GET /public/host HTTP/1.1\r\nHost: evil.test\r\n\r\n')
	check "raw client: SNI localhost, Host evil.test -> 421" 1 "$(printf '%s\n' "$res" | grep -c '^STATUS 421$')"
	res=$(testclient --responses 1 --send-str 'GET /public/host HTTP/1.1\r\nHost: localhost\r\n\r\n')
	check "raw client: matching Host -> 200" 1 "$(printf '%s\n' "$res" | grep -c '^STATUS 200$')"
	before=$((before + 1))
fi
check "no misdirected request reached the backend" "$before" "$(backend_requests)"
finish
