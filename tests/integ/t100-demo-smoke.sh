#!/usr/bin/env bash
# t100: the README's quick-start demo (scripts/demo.sh) starts the gateway on its
# embedded default configuration with two demo backends, and the curl commands it
# prints give the answers it promises. Uses the fixed demo ports 8443/9001/9002.
source "$(dirname "$0")/lib.sh"
out=$(GW_DEMO_BUILD=$GW_BUILD GW_DEMO_DIR=$T/demo timeout 120 bash "$GW_SRC/scripts/demo.sh" --smoke 2>"$T/demo.log")
rc=$?
echo "$out" | tail -n 8
check "demo smoke run exits 0" 0 "$rc"
check "allowed request" 1 "$(grep -c '^ok: 200 ' <<<"$out")"
check "two policy denials" 2 "$(grep -c '^ok: 403 ' <<<"$out")"
check "no-certificate and revoked handshakes fail" 2 "$(grep -c '^ok: 000 ' <<<"$out")"
check_contains "revoked handshake audited" "ok: audit log has the revoked handshake" "$out"
check_contains "prints curl commands" "curl -sS --cacert" "$out"
finish
