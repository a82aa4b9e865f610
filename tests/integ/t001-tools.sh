#!/usr/bin/env bash
# t001-tools: the test peers themselves work. gw_testbackend serves mTLS-only HTTP/1.1
# (echo JSON, streamed /bytes, chunked uploads hashed on the fly, refuses clients without a
# certificate), and gw_testclient reports handshakes and pipelined responses exactly.
set -euo pipefail

src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
tools=$build/tests/tools
d=$(mktemp -d)
pids=()

cleanup() {
	local rc=$? p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ $rc -ne 0 ] && [ -f "$d/backend.log" ]; then
		echo "---- backend log ----" >&2
		tail -n 50 "$d/backend.log" >&2
	fi
	rm -rf "$d"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# json FILE EXPR: prints EXPR evaluated on the JSON document in FILE (as `j`).
json() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

for t in gw_testbackend gw_testclient; do
	[ -x "$tools/$t" ] || fail "$tools/$t not built"
done
bash "$src/tests/tools/mkpki.sh" "$d/pki" >/dev/null
pki=$d/pki

"$tools/gw_testbackend" --listen 127.0.0.1:0 --ready-file "$d/ready" --name b1 \
	--cert "$pki/backend.crt" --key "$pki/backend.key" --ca "$pki/gw-client-ca.crt" \
	2>"$d/backend.log" &
bpid=$!
pids+=("$bpid")
for _ in $(seq 100); do
	[ -s "$d/ready" ] && break
	kill -0 "$bpid" 2>/dev/null || fail "backend exited early"
	sleep 0.05
done
[ -s "$d/ready" ] || fail "backend not ready after 5 s"
port=$(cat "$d/ready")
url=https://backend.test:$port
mtls=(-sS --max-time 30 --cacert "$pki/backend-ca.crt" --resolve "backend.test:$port:127.0.0.1"
	--cert "$pki/gw-client.crt" --key "$pki/gw-client.key")

# Echo: who we are, what we sent, and the counters.
curl "${mtls[@]}" -H 'X-Dup: a' -H 'X-Dup: b' "$url/echo?q=1" >"$d/echo.json"
[ "$(json "$d/echo.json" 'j["backend"]')" = b1 ] || fail "backend name: $(cat "$d/echo.json")"
[ "$(json "$d/echo.json" 'j["path"]')" = "/echo?q=1" ] || fail "path"
[ "$(json "$d/echo.json" 'j["method"]')" = GET ] || fail "method"
[ "$(json "$d/echo.json" 'j["client_cn"]')" = gateway ] || fail "client_cn"
[ "$(json "$d/echo.json" 'j["headers"]["x-dup"]')" = "a, b" ] || fail "repeated header join"
[ "$(json "$d/echo.json" 'j["conn_requests"]')" = 1 ] || fail "conn_requests"
[ "$(json "$d/echo.json" 'j["requests"]')" = 1 ] || fail "requests"
[ "$(json "$d/echo.json" 'j["tls_handshakes"]')" = 1 ] || fail "tls_handshakes"

# /bytes/N: exact length and the i % 251 pattern, both framings.
want=$(python3 -c 'import hashlib; print(hashlib.sha256(bytes(i % 251 for i in range(1000000))).hexdigest())')
for q in "" "?chunked=1"; do
	curl "${mtls[@]}" "$url/bytes/1000000$q" -o "$d/bytes"
	[ "$(stat -c %s "$d/bytes")" = 1000000 ] || fail "/bytes$q size $(stat -c %s "$d/bytes")"
	[ "$(sha256sum <"$d/bytes" | cut -d' ' -f1)" = "$want" ] || fail "/bytes$q content"
done

# A 5 MB chunked upload is counted and hashed.
head -c 5242880 /dev/urandom >"$d/body"
curl "${mtls[@]}" -H 'Transfer-Encoding: chunked' --data-binary "@$d/body" "$url/upload" \
	>"$d/post.json"
[ "$(json "$d/post.json" 'j["headers"].get("transfer-encoding")')" = chunked ] || fail "not chunked"
[ "$(json "$d/post.json" 'j["body_bytes"]')" = 5242880 ] || fail "body_bytes"
[ "$(json "$d/post.json" 'j["body_sha256"]')" = "$(sha256sum <"$d/body" | cut -d' ' -f1)" ] ||
	fail "body_sha256"

# No client certificate: refused (curl and gw_testclient alike).
if curl -sS --max-time 10 --cacert "$pki/backend-ca.crt" --resolve "backend.test:$port:127.0.0.1" \
	"$url/" -o /dev/null 2>"$d/curl-nocert.err"; then
	fail "request without a client certificate succeeded"
fi
rc=0
"$tools/gw_testclient" --connect "127.0.0.1:$port" --ca "$pki/backend-ca.crt" \
	--servername backend.test --send-str 'GET / HTTP/1.1\r\nHost: backend.test\r\n\r\n' \
	>"$d/nocert.out" || rc=$?
[ $rc -eq 3 ] || fail "gw_testclient without cert: exit $rc"
grep -q '^HANDSHAKE FAIL ' "$d/nocert.out" || fail "no HANDSHAKE FAIL: $(cat "$d/nocert.out")"

# Two pipelined requests in one write: two responses, then the requested close.
"$tools/gw_testclient" --connect "127.0.0.1:$port" --ca "$pki/backend-ca.crt" \
	--servername backend.test --cert "$pki/gw-client.crt" --key "$pki/gw-client.key" \
	--send-str 'GET /a HTTP/1.1\r\nHost: backend.test\r\n\r\nGET /b HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\n\r\n' \
	>"$d/pipe.out"
head -n 1 "$d/pipe.out" | grep -q '^HANDSHAKE OK TLSv1\.[23] ' || fail "handshake: $(cat "$d/pipe.out")"
[ "$(grep -c '^STATUS 200$' "$d/pipe.out")" = 2 ] || fail "pipelining: $(cat "$d/pipe.out")"
[ "$(tail -n 1 "$d/pipe.out")" = CLOSED ] || fail "no close after Connection: close"
grep -q 'backend b1: GET /b -> 200' "$d/backend.log" || fail "log line missing"

# Everything was released, and /__quit ends the process cleanly.
curl "${mtls[@]}" "$url/__stats" >"$d/stats.json"
[ "$(json "$d/stats.json" 'j["requests"]')" = 6 ] || fail "stats requests: $(cat "$d/stats.json")"
curl "${mtls[@]}" "$url/__quit" -o /dev/null
for _ in $(seq 100); do
	kill -0 "$bpid" 2>/dev/null || break
	sleep 0.05
done
kill -0 "$bpid" 2>/dev/null && fail "backend still running after /__quit"
wait "$bpid" || fail "backend exit status $?"
pids=()
echo "t001-tools: ok"
