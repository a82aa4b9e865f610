#!/usr/bin/env bash
# t030: deny by default, deny beats allow, exact case-sensitive identities, and hostile
# path encodings never reach a prefix the identity may not see. The path the backend
# receives is exactly the path that was authorised.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
ROUTES='{ prefix = "/public"; cluster = "app"; }, { prefix = "/api"; cluster = "app"; }, { prefix = "/admin"; cluster = "app"; }, { prefix = "/publicity"; cluster = "app"; }'
EXTRA_ROUTES=', { prefix = "/v2"; cluster = "app"; rewrite = "/internal/v2"; }'
EXTRA_POLICY=', { cn = "bob"; allow = [ "/v2" ]; methods = [ "GET" ]; }'
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"

check "bob may read /public" 200 "$(gw_status bob /public/a)"
check "bob may not read /api" 403 "$(gw_status bob /api/a)"
check "alice may read /api" 200 "$(gw_status alice /api/a)"
check "deny beats allow: alice /api/admin" 403 "$(gw_status alice /api/admin/x)"
check "segment-aware prefix: /publicity is not /public" 403 "$(gw_status bob /publicity)"
check "CN=Admin is not admin" 403 "$(gw_status Admin /admin)"
check "admin may read /admin" 200 "$(gw_status admin /admin)"
check "SPIFFE identity allowed on /api" 200 "$(gw_status web /api/x)"
check "SPIFFE identity denied elsewhere" 403 "$(gw_status web /public/x)"
check "method restriction: bob GET /v2" 200 "$(gw_status bob /v2/x)"
check "method restriction: bob POST /v2" 403 "$(gw_status bob /v2/x -X POST -d x)"
check "rewrite: backend sees the rewritten path" "/internal/v2/x" "$(json_get "$(gw_curl bob /v2/x)" path)"

# Hostile encodings: for bob (only /public), none of these may reach /admin.
before=$(grep -c 'GET /admin' "$T/backend-b1.log")
for p in '/public/../admin' '/public/%2e%2e/admin' '/public/%2E%2E/admin' '/public/.%2e/admin' \
	'/public%2fadmin' '/public%2Fadmin' '//admin' '/public/..;/admin' '/public\admin' '/public%5cadmin' \
	'/public/%252e%252e/admin' '/%2e%2e/admin' '/public/../../admin' '/public/%c0%ae%c0%ae/admin' \
	'/admin;x' '/admin;x/y' '/public;x/../../admin' '/public/x;/../../admin'; do
	s=$(gw_status bob "$p" --path-as-is)
	case "$s" in
	400 | 403) pass "bob $p -> $s" ;;
	200)
		# Only allowed when it normalised to something under /public.
		got=$(json_get "$(gw_curl bob "$p" --path-as-is)" path)
		if [[ "$got" == /public/* || "$got" == /public ]]; then pass "bob $p -> 200 as $got"; else fail "bob $p reached $got"; fi
		;;
	*) fail "bob $p -> unexpected $s" ;;
	esac
	CHECKS=$((CHECKS + 1))
done
after=$(grep -c 'GET /admin' "$T/backend-b1.log")
check "no hostile encoding reached /admin on the backend" "$before" "$after"

check "dot segments resolved before authorising (allowed)" "/public/b" "$(json_get "$(gw_curl bob /public/a/../b --path-as-is)" path)"
check "encoded slash refused" 400 "$(gw_status bob /public%2Fadmin --path-as-is)"
check "merged slashes then denied" 403 "$(gw_status bob //admin --path-as-is)"
# A raw ';' is refused even where the identity is allowed: Tomcat-style backends would
# drop ";x" and serve another path than the one authorised. "%3B" stays encoded data.
check "path parameter refused (allowed prefix)" 400 "$(gw_status bob '/public;x/a' --path-as-is)"
check "path parameter refused: reason" "path_parameter" "$(json_get "$(gw_curl bob '/public;x/a' --path-as-is)" reason)"
check "path parameter on a deny prefix refused" 400 "$(gw_status alice '/api/admin;x/y' --path-as-is)"
check "encoded ';' is data: allowed" 200 "$(gw_status bob '/public/a%3bx' --path-as-is)"
check "encoded ';' is no separator: /admin%3Bx is not /admin" 404 "$(gw_status admin '/admin%3bx' --path-as-is)"
check "encoded ';' stays encoded on the backend" "/public/a%3Bx" "$(json_get "$(gw_curl bob '/public/a%3bx' --path-as-is)" path)"
check "no route is 404" 404 "$(gw_status alice /elsewhere)"
check "no route: JSON error names it" "no_route" "$(json_get "$(gw_curl alice /elsewhere)" error)"
grep -q '"decision":"deny","reason":"policy_deny_rule"' "$T/audit.log"
check "deny rule audited" 0 $?
finish
