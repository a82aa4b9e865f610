#!/usr/bin/env bash
# t200: bearer tokens and API keys on top of client certificates, through the real
# gateway with curl. Tokens are minted per test by tests/tools/gw_mktoken (ES256), API
# keys by `gatewayctl apikey`. Every refusal is a 401 with WWW-Authenticate and a reason
# in the audit log; no token or key text ever reaches the audit log.
source "$(dirname "$0")/lib.sh"
MKTOKEN=$GW_BUILD/tests/tools/gw_mktoken
make_pki
start_backend b1

now=$(date +%s)
x5t=$(openssl x509 -in "$PKI/alice.crt" -outform DER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\n')
claims() { # sub scope exp [extra]
	printf '{"iss":"https://idp.test","aud":"gateway","sub":"%s","scope":"%s","exp":%s,"iat":%s%s}' "$1" "$2" "$3" "$now" "${4:-}"
}
mapfile -t tok < <("$MKTOKEN" --alg ES256 --kid k1 --jwks "$T/jwks.json" \
	--claims "$(claims user-1 'orders:read' $((now + 600)))" \
	--claims "$(claims user-2 'orders:read orders:write' $((now + 600)))" \
	--claims "$(claims user-1 'orders:read' $((now - 600)))" \
	--claims "$(claims user-1 'orders:read' $((now + 600)) ',"cnf":{"x5t#S256":"'"$x5t"'"}')" \
	--claims '{"iss":"https://other.test","aud":"gateway","sub":"x","exp":'$((now + 600))'}')
valid=${tok[0]} writer=${tok[1]} expired=${tok[2]} bound=${tok[3]} wrongiss=${tok[4]}

"$GATEWAYCTL" apikey hash-key --out "$T/apikey.key" || fail "apikey hash-key"
apikey=$("$GATEWAYCTL" apikey new --hash-key "$T/apikey.key" --subject svc-batch --scopes batch:run --file "$T/apikeys.txt")
check "apikey printed once" 1 "$(grep -c '^gwk_' <<<"$apikey")"
check_not_contains "key file holds no plaintext key" "$apikey" "$(cat "$T/apikeys.txt")"

EXTRA_TOP="issuers = ( { name = \"idp\"; issuer = \"https://idp.test\"; audience = \"gateway\"; jwks = \"$T/jwks.json\"; } );
api_keys = { file = \"$T/apikeys.txt\"; hash_key = \"$T/apikey.key\"; };
admin = { address = \"127.0.0.1:0\"; };"
ROUTES='{ prefix = "/public"; cluster = "app"; }, { prefix = "/api"; cluster = "app"; need = "cert+token"; },
  { prefix = "/orders"; cluster = "app"; need = "cert+token"; }, { prefix = "/bound"; cluster = "app"; need = "cert+bound-token"; },
  { prefix = "/batch"; cluster = "app"; need = "cert+apikey"; }'
EXTRA_POLICY=', { cn = "alice"; allow = [ "/bound" ]; }, { scope = "orders:write"; allow = [ "/orders" ]; methods = [ "POST" ]; },
  { token_sub = "user-1"; allow = [ "/orders" ]; methods = [ "GET" ]; }, { scope = "batch:run"; allow = [ "/batch" ]; }'
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

bearer() { echo "Authorization: Bearer $1"; }
check "cert+token route without a token: 401" 401 "$(gw_status alice /api/x)"
hdrs=$(gw_curl alice /api/x -D - -o /dev/null)
check_contains "401 carries WWW-Authenticate" 'WWW-Authenticate: Bearer error="invalid_token"' "$hdrs"
check "cert+token route with a valid token: 200" 200 "$(gw_status alice /api/x -H "$(bearer "$valid")")"
body=$(gw_curl alice /api/x -H "$(bearer "$valid")")
hd=$(json_get "$body" headers)
check "backend gets the verified token subject" "user-1" "$(json_get "$hd" x-client-token-subject)"
check "backend still gets the certificate identity" "alice" "$(json_get "$hd" x-client-identity)"
check "expired token: 401" 401 "$(gw_status alice /api/x -H "$(bearer "$expired")")"
check "wrong issuer: 401" 401 "$(gw_status alice /api/x -H "$(bearer "$wrongiss")")"
check "garbage token: 401" 401 "$(gw_status alice /api/x -H "$(bearer "abc.def.ghi")")"
check "invalid token on a cert-only route is refused too (fail closed)" 401 "$(gw_status alice /public/x -H "$(bearer "$expired")")"
check "no token on a cert-only route: fine" 200 "$(gw_status alice /public/x)"
# Scopes reach the policy: only the orders:write token may POST /orders; sub user-1 may GET.
check "scope allows POST /orders" 200 "$(gw_status alice /orders/1 -X POST -d x -H "$(bearer "$writer")")"
check "token without the scope: POST /orders denied" 403 "$(gw_status alice /orders/1 -X POST -d x -H "$(bearer "$valid")")"
check "token subject rule: GET /orders" 200 "$(gw_status alice /orders/1 -H "$(bearer "$valid")")"
# RFC 8705: a bound token works only with the certificate it is bound to.
check "bound token with its certificate" 200 "$(gw_status alice /bound/x -H "$(bearer "$bound")")"
check "bound token replayed with another certificate" 401 "$(gw_status bob /bound/x -H "$(bearer "$bound")")"
check "unbound token on a cert+bound-token route" 401 "$(gw_status alice /bound/x -H "$(bearer "$valid")")"
# API keys.
check "right API key" 200 "$(gw_status alice /batch/x -H "X-Api-Key: $apikey")"
check "wrong API key" 401 "$(gw_status alice /batch/x -H "X-Api-Key: gwk_${apikey:4:10}x")"
check "no API key on a cert+apikey route" 401 "$(gw_status alice /batch/x)"
body=$(gw_curl alice /batch/x -H "X-Api-Key: $apikey")
check "API key not forwarded to the backend" "null" "$(json_get "$(json_get "$body" headers)" x-api-key)"
sleep 0.3
audit=$(cat "$T/audit.log")
check_contains "audit names the token failure" '"reason":"expired"' "$audit"
check_contains "audit names the binding failure" '"reason":"token_not_bound_to_certificate"' "$audit"
check_contains "audit records the token subject" '"subject":"user-1"' "$audit"
check_not_contains "no token text in the audit log" "${valid:0:40}" "$audit"
check_not_contains "no API key text in the audit log" "$apikey" "$audit"
check_not_contains "no token text in the gateway log" "${valid:0:40}" "$(cat "$T/gateway.log")"
metrics=$(curl -s "http://$(sed -n 's/^admin //p' "$T/gw.ready")/metrics")
check_contains "token failures counted by reason" 'gateway_token_failures_total{reason="expired"} 2' "$metrics"
check_contains "binding failures counted (replayed and unbound)" 'gateway_token_failures_total{reason="token_not_bound_to_certificate"} 2' "$metrics"
finish
