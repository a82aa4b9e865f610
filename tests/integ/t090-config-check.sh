#!/usr/bin/env bash
# t090: `gatewayd -t` accepts a good config and names FILE:LINE for every problem of a bad
# one (all of them in one run, not just the first); SIGHUP with a broken config logs the
# same diagnostics and keeps serving the old policy; SIGHUP with a good config that
# changes the policy applies it to new requests.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
write_config "$T/good.conf"

# gwcheck FILE: runs `gatewayd -t -c FILE`; sets OUT (stdout and stderr) and RC.
gwcheck() {
	OUT=$("$GATEWAYD" -t -c "$1" 2>&1)
	RC=$?
}

# line_of FILE TEXT: number of the first line holding TEXT (fixed string).
line_of() {
	grep -nF -m1 -- "$2" "$1" | cut -d: -f1
}

# expect_broken NAME FILE: -t must fail and not claim the file is fine.
expect_broken() {
	gwcheck "$2"
	check "$1: -t exits non-zero" 1 "$((RC != 0))"
	check_not_contains "$1: not reported OK" "configuration OK" "$OUT"
}

gwcheck "$T/good.conf"
check "good config: -t exits 0" 0 "$RC"
check_contains "good config: says so" "$T/good.conf: configuration OK" "$OUT"

# Unknown key, at the line it is written on.
f=$T/unknown-key.conf
sed '1a bogus_key = 1;' "$T/good.conf" >"$f"
expect_broken "unknown key" "$f"
check_contains "unknown key: file:line" "$f:$(line_of "$f" bogus_key): unknown key 'bogus_key'" "$OUT"

# Missing certificate file. The TLS context is built per listener, so the problem is
# reported at the listener's "tls" group, with the missing file named in the message.
f=$T/missing-cert.conf
sed "s#$PKI/server.crt#$T/missing.crt#" "$T/good.conf" >"$f"
expect_broken "missing cert" "$f"
check_contains "missing cert: file:line" "$f:$(line_of "$f" 'tls = {'): $T/missing.crt: cannot load certificate chain" "$OUT"

# A route naming a cluster that does not exist.
f=$T/unknown-cluster.conf
ROUTES='{ prefix = "/"; cluster = "nope"; }' write_config "$f"
expect_broken "unknown cluster" "$f"
check_contains "unknown cluster: file:line" "$f:$(line_of "$f" '"nope"'): 'routes[0].cluster' names unknown cluster 'nope'" "$OUT"

# Rule prefixes that are not in normal form: a trailing '/', and a ";" path parameter
# (refused by the normaliser, so no rule could ever match it).
for pfx in '/api/' '/api;v=1'; do
	f=$T/bad-prefix.conf
	EXTRA_POLICY=", { cn = \"bob\"; allow = [ \"$pfx\" ]; }" write_config "$f"
	expect_broken "bad prefix $pfx" "$f"
	check_contains "bad prefix $pfx: file:line" "$f:$(line_of "$f" "\"$pfx\""): rule prefix \"$pfx\" is not a normalised path prefix" "$OUT"
done

# Syntax error in the middle of the file (a list closed with ';' instead of ']').
f=$T/syntax.conf
sed 's#{ cn = "bob"; allow = \[ "/public" \]; }#{ cn = "bob"; allow = [ "/public" ; }#' "$T/good.conf" >"$f"
expect_broken "syntax error" "$f"
check_contains "syntax error: file:line" "$f:$(line_of "$f" '"/public" ;'): syntax error" "$OUT"

# Three independent errors: all three are reported in one run, each at its line.
f=$T/three.conf
ROUTES='{ prefix = "/"; cluster = "nope"; }' EXTRA_POLICY=', { cn = "bob"; allow = [ "/api/" ]; }' \
	write_config "$f"
sed -i '1a bogus_key = 1;' "$f"
expect_broken "three errors" "$f"
check_contains "three errors: unknown key" "$f:$(line_of "$f" bogus_key): unknown key 'bogus_key'" "$OUT"
check_contains "three errors: unknown cluster" "$f:$(line_of "$f" '"nope"'): 'routes[0].cluster' names unknown cluster 'nope'" "$OUT"
check_contains "three errors: bad prefix" "$f:$(line_of "$f" '"/api/"'): rule prefix \"/api/\" is not" "$OUT"
check_contains "three errors: counted" "$f: configuration has 3 error(s)" "$OUT"

# ---- live reload ----

# wait_log TEXT: bounded wait (5 s) for TEXT in the gateway log.
wait_log() {
	local i
	for ((i = 0; i < 50; i++)); do
		grep -qF -- "$1" "$T/gateway.log" && return 0
		sleep 0.1
	done
	return 1
}

live=$T/live.conf
cp "$T/good.conf" "$live"
start_gateway "$live"
check "before reload: bob may read /public" 200 "$(gw_status bob /public/a)"
check "before reload: bob may not read /api" 403 "$(gw_status bob /api/a)"

# Broken config + HUP: the failure is logged with file:line, the old policy stays.
cp "$T/three.conf" "$live.new" && mv "$live.new" "$live"
kill -HUP "$GW_PID"
wait_log "reload failed"
check "broken reload: logged as failed" 0 $?
log=$(cat "$T/gateway.log")
check_contains "broken reload: file:line in log" "reload: $live:$(line_of "$live" bogus_key): unknown key 'bogus_key'" "$log"
check_contains "broken reload: every error in log" "reload: $live:$(line_of "$live" '"/api/"'): rule prefix" "$log"
check_contains "broken reload: old generation kept" "reload failed: keeping generation 1" "$log"
check "broken reload: gateway still running" 0 "$(kill -0 "$GW_PID" 2>/dev/null; echo $?)"
check "broken reload: old policy, bob /public" 200 "$(gw_status bob /public/a)"
check "broken reload: old policy, bob /api" 403 "$(gw_status bob /api/a)"
check "broken reload: old routes, alice /api" 200 "$(gw_status alice /api/a)"
rec=$(grep '"type":"reload"' "$T/audit.log" | tail -n 1)
check_contains "broken reload: in the audit log" '"result":"failed"' "$rec"
check_contains "broken reload: audit record has the file:line" "$live:$(line_of "$live" bogus_key): unknown key" "$rec"

# Good config that lets bob use /api + HUP: new requests see the new rule.
EXTRA_POLICY=', { cn = "bob"; allow = [ "/api" ]; }' write_config "$live.new"
mv "$live.new" "$live"
kill -HUP "$GW_PID"
got=
for ((i = 0; i < 50; i++)); do
	got=$(gw_status bob /api/a)
	[ "$got" == 200 ] && break
	sleep 0.1
done
check "good reload: bob may now read /api" 200 "$got"
wait_log "reload: generation 2 in service"
check "good reload: generation 2 logged" 0 $?
check "good reload: bob still may not read /admin" 403 "$(gw_status bob /admin)"
check "good reload: alice deny rule still holds" 403 "$(gw_status alice /api/admin/x)"
finish
