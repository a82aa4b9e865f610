#!/usr/bin/env bash
# t040: request smuggling and protocol-confusion shapes get 400 and the connection is
# closed; the backend never sees a request from any of them. Each case is sent with the
# raw TLS client (exact bytes), followed by a second request on the same connection that
# must never be answered.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

stats=$(backend_stats b1)
before=$(json_get "$stats" requests)

H='Host: localhost\r\n'
smuggle() {
	local name=$1 req=$2
	# The trailing GET is what a smuggled request would look like; it must never be served.
	local out
	out=$(testclient --timeout-ms 3000 --send-str "${req}GET /public/smuggled HTTP/1.1\r\n${H}\r\n" 2>/dev/null)
	check "$name: 400" "STATUS 400" "$(grep -m1 '^STATUS' <<<"$out")"
	check "$name: exactly one response" 1 "$(grep -c '^STATUS' <<<"$out")"
	check "$name: connection closed" "CLOSED" "$(tail -n1 <<<"$out")"
}

smuggle "CL+TE" "POST /public/a HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
smuggle "TE+CL" "POST /public/a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n"
smuggle "differing CL" "POST /public/a HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"
smuggle "duplicate CL" "POST /public/a HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 2\r\n\r\nab"
smuggle "TE gzip" "POST /public/a HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n"
smuggle "TE chunked, identity" "POST /public/a HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
smuggle "TE with tab" "POST /public/a HTTP/1.1\r\n${H}Transfer-Encoding:\tchunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n"
smuggle "obs-fold" "GET /public/a HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n"
smuggle "bare LF in header" "GET /public/a HTTP/1.1\r\n${H}X-A: b\nX-B: c\r\n\r\n"
smuggle "invalid header name" "GET /public/a HTTP/1.1\r\n${H}X A: b\r\n\r\n"
smuggle "fragment in target" "GET /public/a#x HTTP/1.1\r\n${H}\r\n"
smuggle "foreign absolute-form" "GET https://evil.test/public/a HTTP/1.1\r\n${H}\r\n"
smuggle "HTTP/0.9" "GET /public/a\r\n"
smuggle "HTTP/2 preface" "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
smuggle "CONNECT" "CONNECT backend.test:443 HTTP/1.1\r\n${H}\r\n"
smuggle "Upgrade h2c" "GET /public/a HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
smuggle "chunk size junk" "POST /public/a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;x\r\nabcde\r\n0x\r\n\r\n"
smuggle "space before colon" "GET /public/a HTTP/1.1\r\n${H}Content-Length : 0\r\n\r\n"
smuggle "empty header name" "GET /public/a HTTP/1.1\r\n${H}: keep-alive, X-Foo\r\n\r\n"
smuggle "identity header alias" "GET /public/a HTTP/1.1\r\n${H}X_Client_Identity: admin\r\n\r\n"

# NUL inside a header value (printf, since --send-str cannot carry a NUL).
printf 'GET /public/a HTTP/1.1\r\nHost: localhost\r\nX-A: b\0c\r\n\r\nGET /public/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n' >"$T/nul.req"
out=$(testclient --timeout-ms 3000 --send "$T/nul.req" 2>/dev/null)
check "NUL in header: 400" "STATUS 400" "$(grep -m1 '^STATUS' <<<"$out")"
check "NUL in header: closed" "CLOSED" "$(tail -n1 <<<"$out")"

# A same-host absolute-form target is fine (RFC 9112 3.2.2) and normalised like any path.
out=$(testclient --timeout-ms 3000 --send-str "GET https://localhost/public/abs HTTP/1.1\r\n${H}Connection: close\r\n\r\n" 2>/dev/null)
check "same-host absolute-form: 200" "STATUS 200" "$(grep -m1 '^STATUS' <<<"$out")"

# Pipelined valid requests are answered in order on one connection.
out=$(testclient --timeout-ms 3000 --send-str "GET /public/1 HTTP/1.1\r\n${H}\r\nGET /public/2 HTTP/1.1\r\n${H}\r\nGET /public/3 HTTP/1.1\r\n${H}Connection: close\r\n\r\n" --dump 2>"$T/pipe.dump")
check "pipelined: three answers" 3 "$(grep -c '^STATUS 200' <<<"$out")"
order=$(grep -o '"path":"/public/[0-9]"' "$T/pipe.dump" | tr -d '\n')
check "pipelined: answered in order" '"path":"/public/1""path":"/public/2""path":"/public/3"' "$order"

stats=$(backend_stats b1)
after=$(json_get "$stats" requests)
# The backend counts the requests it finished before answering /__stats: the same-host
# absolute-form one and the three pipelined ones, nothing else.
check "backend saw only the legitimate requests" "$((before + 1 + 3))" "$after"
grep -q 'GET /public/smuggled' "$T/backend-b1.log"
check "no smuggled request reached the backend" 1 $?
for reason in unexpected_content_length invalid_transfer_encoding obs_fold http09 http2_preface \
	connect_not_supported upgrade_not_supported foreign_absolute_target fragment_in_target identity_header_alias; do
	check "refusal audited as $reason" 1 "$(grep '"status":400' "$T/audit.log" | grep -c "\"reason\":\"$reason\"" | awk '{print ($1>0)}')"
done
finish
