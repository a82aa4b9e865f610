#!/usr/bin/env bash
# t050: bodies stream through the gateway instead of being buffered. 100 MiB go up
# chunked (piped from a generator, never held by the shell or curl), 100 MiB go up with a
# Content-Length, and 100 MiB come down (plain and chunked); every body is hashed on both
# ends, and the gateway's peak RSS stays far below the volume that went through it.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
ROUTES='{ prefix = "/"; cluster = "app"; }'
WORKERS=1
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

N=$((100 * 1024 * 1024))
LIMIT_KB=$((64 * 1024))

# gen: N deterministic pseudo-random bytes (AES-CTR over zeros), so the same stream can
# be hashed here and uploaded without a temp file.
gen() {
	head -c "$N" /dev/zero |
		openssl enc -aes-128-ctr -K 0123456789abcdef0123456789abcdef -iv 00000000000000000000000000000000
}

# pattern_sha N: sha256 of the backend's /bytes pattern (byte i = i % 251).
pattern_sha() {
	python3 -c '
import hashlib, sys
n = int(sys.argv[1]); run = bytes(range(251)) * 4096; h = hashlib.sha256()
for _ in range(n // len(run)):
    h.update(run)
r = n % len(run)
h.update((bytes(range(251)) * (r // 251 + 1))[:r])
print(h.hexdigest())' "$1"
}

rss_start=$(gw_vm VmHWM)
want_up=$(gen | sha256sum | cut -d' ' -f1)

# Chunked upload: curl -T - streams stdin with Transfer-Encoding: chunked.
r=$(gen | gw_curl alice /upload/chunked --max-time 120 -T - -H 'Content-Type: application/octet-stream')
check "100 MiB chunked upload: backend hash" "$want_up" "$(json_get "$r" body_sha256)"
check "100 MiB chunked upload: backend byte count" "$N" "$(json_get "$r" body_bytes)"
check "chunked upload reached the backend chunked" "chunked" "$(json_get "$(json_get "$r" headers)" transfer-encoding)"

# Content-Length upload (curl -T FILE sends the file's length).
gen >"$T/up.bin"
r=$(gw_curl alice /upload/cl --max-time 120 -T "$T/up.bin")
rm -f "$T/up.bin"
check "100 MiB Content-Length upload: backend hash" "$want_up" "$(json_get "$r" body_sha256)"
check "Content-Length upload forwarded with its length" "$N" "$(json_get "$(json_get "$r" headers)" content-length)"

# Downloads: Content-Length framed and chunked.
want_down=$(pattern_sha "$N")
got=$(gw_curl alice "/bytes/$N" --max-time 120 | sha256sum | cut -d' ' -f1)
check "100 MiB download is byte-exact" "$want_down" "$got"
got=$(gw_curl alice "/bytes/$N?chunked=1" --max-time 120 | sha256sum | cut -d' ' -f1)
check "100 MiB chunked download is byte-exact" "$want_down" "$got"

# A slow reader: the gateway must stop reading the backend, not buffer for the client.
got=$(gw_curl alice "/bytes/$((8 * 1024 * 1024))" --max-time 120 --limit-rate 4M | sha256sum | cut -d' ' -f1)
check "rate-limited 8 MiB download is byte-exact" "$(pattern_sha $((8 * 1024 * 1024)))" "$got"

check "all five transfers audited as 200" 5 "$(grep -c '"status":200' "$T/audit.log")"

rss_peak=$(gw_vm VmHWM)
echo "gateway VmHWM: ${rss_start} kB at start, ${rss_peak} kB after 500+ MiB streamed"
if is_sanitized "$GATEWAYD"; then
	echo "note: sanitizer build, peak RSS limit not asserted"
else
	CHECKS=$((CHECKS + 1))
	if [ -n "$rss_peak" ] && [ "$rss_peak" -lt "$LIMIT_KB" ]; then
		pass "gateway peak RSS ${rss_peak} kB < ${LIMIT_KB} kB"
	else
		fail "gateway peak RSS [${rss_peak}] kB not under ${LIMIT_KB} kB"
	fi
fi
finish
