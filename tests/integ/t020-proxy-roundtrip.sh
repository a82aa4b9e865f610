#!/usr/bin/env bash
# t020: a verified client reaches the backend through the gateway over re-encrypted,
# mutually verified TLS, and gets the backend's bytes back exactly.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

body=$(gw_curl alice /public/hello)
check "backend answered through the gateway" "/public/hello" "$(json_get "$body" path)"
check "backend verified the gateway's client certificate" "gateway" "$(json_get "$body" client_cn)"
check "identity header set by the gateway" "alice" "$(json_get "$(json_get "$body" headers)" x-client-identity)"

# Download: 5 MiB of the backend's deterministic pattern, compared byte for byte.
want=$(python3 -c 'import hashlib,sys; n=5*1024*1024; print(hashlib.sha256(bytes(i%251 for i in range(n))).hexdigest())')
got=$(gw_curl alice /bytes/5242880 | sha256sum | cut -d' ' -f1)
check "5 MiB download is byte-exact" "$want" "$got"
got=$(gw_curl alice "/bytes/1000000?chunked=1" | sha256sum | cut -d' ' -f1)
want=$(python3 -c 'import hashlib; print(hashlib.sha256(bytes(i%251 for i in range(1000000))).hexdigest())')
check "chunked download is byte-exact" "$want" "$got"

# Upload with Content-Length and chunked: the backend hashes what it received.
head -c 3000000 /dev/urandom >"$T/up.bin"
want=$(sha256sum "$T/up.bin" | cut -d' ' -f1)
r=$(gw_curl alice /upload/cl --data-binary @"$T/up.bin")
check "Content-Length upload arrives intact" "$want" "$(json_get "$r" body_sha256)"
r=$(gw_curl alice /upload/chunked -H 'Transfer-Encoding: chunked' --data-binary @"$T/up.bin")
check "chunked upload arrives intact" "$want" "$(json_get "$r" body_sha256)"

# HEAD has no body even though the backend announces a length.
hdrs=$(gw_curl alice /public/x -I)
check_contains "HEAD answered" "HTTP/1.1 200" "$hdrs"

# The audit log has one allow record per request, with the rule that allowed it.
audit=$(cat "$T/audit.log")
check_contains "audit names the allow rule" '"rule":"'"$T"'/gw.conf:' "$audit"
check_contains "audit has identity" '"cn":"alice"' "$audit"
check "one audit record per request" 6 "$(grep -c '"type":"request"' "$T/audit.log")"
finish
