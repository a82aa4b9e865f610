#!/usr/bin/env bash
# t035: policy files next to the main configuration. `gatewayctl policy check`, `explain`
# and `diff` give their documented output with file:line; the daemon refuses a broken
# policy file at start (gatewayd -t) and on SIGHUP keeps serving the old policy; a good
# change to a policy file applies on reload; the audit record's "rule" points into the
# policy file.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1

# line_of FILE TEXT: number of the first line holding TEXT (fixed string).
line_of() {
	grep -nF -m1 -- "$2" "$1" | cut -d: -f1
}

# ctl ARGS: runs gatewayctl; sets OUT (stdout and stderr) and RC.
ctl() {
	OUT=$("$GATEWAYCTL" "$@" 2>&1)
	RC=$?
}

ROUTES='{ prefix = "/public"; cluster = "app"; }, { prefix = "/api"; cluster = "app"; }, { prefix = "/admin"; cluster = "app"; }, { prefix = "/reports"; cluster = "app"; name = "reports"; }'
write_config "$T/gw.conf"
echo 'policy_files = [ "policy.d/*.conf" ];' >>"$T/gw.conf"
mkdir -p "$T/policy.d"
PD=$T/policy.d
cat >"$PD/10-groups.conf" <<'EOF'
# Who reads reports.
groups = (
  { name = "readers";
    members = ( { cn = "bob"; }, { spiffe = "spiffe://example.org/ns/prod/sa/web"; } ); }
);
EOF
cat >"$PD/20-reports.conf" <<'EOF'
rules = (
  { group = "readers"; allow = [ "route:reports" ]; methods = [ "GET", "HEAD" ]; },
  { cn = "bob"; deny = [ "/reports/private" ]; },
  { cn = "bob"; allow = [ "/reports/daily" ]; methods = [ "GET" ]; },
  { cn = "admin"; allow = [ "/reports" ]; }
);
EOF
RULE_READERS="$PD/20-reports.conf:$(line_of "$PD/20-reports.conf" 'group = "readers"')"
RULE_BOB_DENY="$PD/20-reports.conf:$(line_of "$PD/20-reports.conf" '/reports/private')"
RULE_SHADOWED="$PD/20-reports.conf:$(line_of "$PD/20-reports.conf" '/reports/daily')"

# ---- check ----
ctl policy check -c "$T/gw.conf"
check "check: good config exits 0" 0 "$RC"
check_contains "check: says OK with counts" "$T/gw.conf: policy OK: 10 rule(s), 1 group(s), 4 route(s)" "$OUT"
check_contains "check: digest" "digest sha256:" "$OUT"
check_contains "check: shadowed rule warned at its file:line" "$RULE_SHADOWED: warning: rule is fully shadowed by the rule at $RULE_READERS" "$OUT"
ctl policy check -p "$PD/20-reports.conf"
check "check: a policy file naming a route alone is refused" 1 "$RC"
check_contains "check: why" "names undefined route 'reports' (routes are only known with the configuration)" "$OUT"
ctl policy check "$PD/10-groups.conf"
check "check: a policy file alone (recognised by its keys)" 0 "$RC"

# Broken policy files: each problem at its file:line, all in one run.
bad=$T/bad.d
mkdir -p "$bad"
cat >"$bad/a.conf" <<'EOF'
rules = (
  { cn = "bob"; allow = [ "/api/" ]; },
  { spiffe = "spiffe://Example.org/x"; allow = [ "/api" ]; },
  { fingerprint = "ABCD"; deny = [ "/api" ]; },
  { group = "nobody"; allow = [ "/api" ]; },
  { cn = "bob"; allow = [ "/api" ]; colour = "red"; }
);
EOF
sed "s#policy.d/\*.conf#bad.d/*.conf#" "$T/gw.conf" >"$T/bad.conf"
ctl policy check -c "$T/bad.conf"
check "check: broken policy file exits 1" 1 "$RC"
check_contains "check: prefix not normalised" "$bad/a.conf:2: rule prefix \"/api/\" is not a normalised path prefix" "$OUT"
check_contains "check: bad SPIFFE ID" "$bad/a.conf:3: rule spiffe value \"spiffe://Example.org/x\" is not a valid SPIFFE ID" "$OUT"
check_contains "check: bad fingerprint" "$bad/a.conf:4: rule fingerprint value \"ABCD\" is not 64 lower-case hex digits" "$OUT"
check_contains "check: undefined group" "$bad/a.conf:5: rule names undefined group 'nobody'" "$OUT"
check_contains "check: unknown key" "$bad/a.conf:6: unknown key 'colour' in 'rules[4]'" "$OUT"
printf 'rules = ( { cn = "bob"; allow = [ "/api" ; } );\n' >"$bad/b.conf"
ctl policy check -c "$T/bad.conf"
check_contains "check: syntax error in a second file, same run" "$bad/b.conf:1: syntax error" "$OUT"
OUT=$("$GATEWAYD" -t -c "$T/bad.conf" 2>&1)
check "gatewayd -t refuses the broken policy file" 1 "$?"
check_contains "gatewayd -t: file:line" "$bad/a.conf:5: rule names undefined group 'nobody'" "$OUT"

# ---- explain ----
ctl policy explain -c "$T/gw.conf" --cert "$PKI/bob.crt" --method GET --path /reports/./x/../q
check "explain: exits 0" 0 "$RC"
check_contains "explain: normalised path" "path      /reports/q   (as sent: /reports/./x/../q)" "$OUT"
check_contains "explain: route" "route     /reports -> cluster app ($T/gw.conf:" "$OUT"
check_contains "explain: identity from the certificate" "identity  cn=bob" "$OUT"
check_contains "explain: decision" "decision  allow" "$OUT"
check_contains "explain: deciding rule" "rule      $RULE_READERS  allow group=readers /reports GET,HEAD" "$OUT"
check_contains "explain: close rule, other prefix" "close     $RULE_BOB_DENY  deny cn=bob /reports/private *   (same identity, other prefix)" "$OUT"
check_contains "explain: close rule, other identity" "allow cn=admin /reports *   (covers the path, other identity)" "$OUT"
ctl policy explain -c "$T/gw.conf" --cn bob --method GET --path /reports/private/1
check_contains "explain: deny beats allow" "rule      $RULE_BOB_DENY  deny cn=bob /reports/private *" "$OUT"
check_contains "explain: the allow that lost" "matched   $RULE_READERS" "$OUT"
ctl policy explain -c "$T/gw.conf" --spiffe spiffe://example.org/ns/prod/sa/web --method POST --path /reports
check_contains "explain: method not allowed" "decision  deny" "$OUT"
check_contains "explain: other methods named" "(same identity and prefix, other methods)" "$OUT"
ctl policy explain -c "$T/gw.conf" --cn nobody --path '/reports/%2e%2e/admin'
check_contains "explain: default deny" "rule      (none: default deny" "$OUT"
ctl policy explain -c "$T/gw.conf" --cn bob --path '/reports%2fx'
check_contains "explain: refused path" "result    400 (encoded_slash)" "$OUT"

# ---- diff ----
mkdir -p "$T/new.d"
cp "$PD/10-groups.conf" "$T/new.d/"
cat >"$T/new.d/20-reports.conf" <<'EOF'
rules = (
  { group = "readers"; allow = [ "/reports" ]; methods = [ "GET", "HEAD", "POST" ]; },
  { cn = "bob"; deny = [ "/reports/private" ]; },
  { cn = "carol"; allow = [ "/reports/weekly" ]; methods = [ "GET" ]; }
);
EOF
sed "s#policy.d/\*.conf#new.d/*.conf#" "$T/gw.conf" >"$T/new.conf"
ctl policy diff "$T/gw.conf" "$T/new.conf"
check "diff: exit 1 when grants change" 1 "$RC"
check_contains "diff: gained by a group member" "+ cn=bob /reports POST   (now: $T/new.d/20-reports.conf:2  allow group=readers /reports GET,HEAD,POST)" "$OUT"
check_contains "diff: gained by the other member" "+ spiffe=spiffe://example.org/ns/prod/sa/web /reports POST" "$OUT"
check_contains "diff: new identity" "+ cn=carol /reports/weekly GET" "$OUT"
check_contains "diff: lost" "- cn=admin /reports *   (was: $PD/20-reports.conf:5  allow cn=admin /reports *; now: no rule allows it)" "$OUT"
check_contains "diff: summary" "3 grant(s) gained, 1 lost" "$OUT"
ctl policy diff -p "$PD/10-*.conf" -p "$T/new.d/10-groups.conf"
check "diff: identical policies exit 0" 0 "$RC"
check_contains "diff: nothing" "0 grant(s) gained, 0 lost" "$OUT"
cp "$T/gw.conf" "$T/gw2.conf"
sed -i 's#{ cn = "bob"; allow = \[ "/public" \]; }#{ cn = "bob"; allow = [ "/public", "/api" ]; }#' "$T/gw2.conf"
ctl policy diff -c "$T/gw.conf" -c "$T/gw2.conf"
check_contains "diff: two configurations" "+ cn=bob /api *" "$OUT"

# ---- grants ----
ctl policy grants -c "$T/gw.conf"
check "grants: exits 0" 0 "$RC"
check_contains "grants: a group member's grant" "cn=bob /reports allow GET,HEAD" "$OUT"
check_contains "grants: the deny below it" "cn=bob /reports/private allow - deny *" "$OUT"
check_not_contains "grants: a shadowed rule adds nothing" "cn=bob /reports/daily" "$OUT"

# ---- the daemon ----
live=$T/live.conf
cp "$T/gw.conf" "$live"
start_gateway "$live"
check "bob reads reports (group rule from a policy file)" 200 "$(gw_status bob /reports/audit-probe)"
check "bob may not read private reports" 403 "$(gw_status bob /reports/private/1)"
check "alice is not a reader" 403 "$(gw_status alice /reports/x)"
rec=$(grep -F '"path":"/reports/audit-probe"' "$T/audit.log" | head -n1)
check "audit: rule points into the policy file" "$RULE_READERS" "$(json_get "$rec" rule)"

# wait_log TEXT: bounded wait (5 s) for TEXT in the gateway log.
wait_log() {
	local i
	for ((i = 0; i < 50; i++)); do
		grep -qF -- "$1" "$T/gateway.log" && return 0
		sleep 0.1
	done
	return 1
}

# A broken policy file + HUP: the failure names the file and line, the old policy stays.
good=$(cat "$PD/20-reports.conf")
printf 'rules = (\n  { cn = "alice"; allow = [ "/reports" ]; },\n  { group = "ghosts"; allow = [ "/api" ]; }\n);\n' >"$PD/20-reports.conf"
kill -HUP "$GW_PID"
wait_log "reload failed"
check "broken policy reload: logged as failed" 0 $?
check_contains "broken policy reload: file:line in log" "reload: $PD/20-reports.conf:3: rule names undefined group 'ghosts'" "$(cat "$T/gateway.log")"
check "broken policy reload: old policy, bob reads" 200 "$(gw_status bob /reports/x)"
check "broken policy reload: old policy, alice still refused" 403 "$(gw_status alice /reports/x)"

# A good change + HUP: the new policy file is in force.
printf '%s\n' "$good" | sed 's#{ cn = "admin"; allow = \[ "/reports" \]; }#{ cn = "alice"; allow = [ "/reports" ]; }#' >"$PD/20-reports.conf"
kill -HUP "$GW_PID"
got=
for ((i = 0; i < 50; i++)); do
	got=$(gw_status alice /reports/x)
	[ "$got" == 200 ] && break
	sleep 0.1
done
check "good policy reload: alice now reads reports" 200 "$got"
check "good policy reload: bob still denied private" 403 "$(gw_status bob /reports/private/2)"
finish
