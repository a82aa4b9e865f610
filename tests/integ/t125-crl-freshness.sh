#!/usr/bin/env bash
# t125: freshness of trust files. A CRL past its nextUpdate is refused at load and reload
# (crl_next_update = "fail", the default) naming the file; with "grace" it is accepted
# with a warning while within crl_grace, still revokes, and lets valid clients in; past the
# grace it is refused again. Certificates expiring within 14 days (server, client CA,
# upstream client) are warned about at load.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1

line_of() { grep -nF -m1 -- "$2" "$1" | cut -d: -f1; }

# An openssl ca database for the client CA with "revoked" revoked, to date CRLs freely.
client_ca_db
openssl ca -batch -config "$T/ca/ca.cnf" -keyfile "$PKI/ca.key" -cert "$PKI/ca.crt" \
	-revoke "$PKI/revoked.crt" >/dev/null 2>&1
ago() { date -u -d "@$(($(date +%s) - $1))" +%Y%m%d%H%M%SZ; }
# stale_crl SECONDS_PAST OUT: a CRL of the client CA whose nextUpdate passed that long ago.
stale_crl() {
	openssl ca -gencrl -batch -config "$T/ca/ca.cnf" -keyfile "$PKI/ca.key" -cert "$PKI/ca.crt" \
		-crl_lastupdate "$(ago $(($1 + 86400)))" -crl_nextupdate "$(ago "$1")" -out "$2" 2>/dev/null
}
stale_crl 3600 "$T/stale.crl"
cat "$T/stale.crl" "$PKI/inter.crl" >"$T/stale.pem"

# conf FILE TLS_EXTRA: the standard config with the stale CRL and extra listener tls keys.
conf() {
	write_config "$1"
	sed -i -e "s|\"$PKI/crls.pem\"|\"$T/stale.pem\"|" -e "s|crl = \[|$2 crl = [|" "$1"
}

conf "$T/fail.conf" ""
out=$("$GATEWAYD" -t -c "$T/fail.conf" 2>&1)
check "stale CRL, default mode: -t fails" 1 "$(($? != 0))"
check_contains "stale CRL: file:line, file and why" "$T/fail.conf:$(line_of "$T/fail.conf" "crl = [" ): $T/stale.pem: CRL nextUpdate" "$out"
check_contains "stale CRL: says the mode" 'has passed (crl_next_update = "fail")' "$out"

conf "$T/over.conf" 'crl_next_update = "grace"; crl_grace = 600;'
out=$("$GATEWAYD" -t -c "$T/over.conf" 2>&1)
check "stale CRL past the grace: -t fails" 1 "$(($? != 0))"
check_contains "past the grace: says so" "grace period over" "$out"

conf "$T/grace.conf" 'crl_next_update = "grace"; crl_grace = 86400;'
out=$("$GATEWAYD" -t -c "$T/grace.conf" 2>&1)
check "stale CRL within the grace: -t passes" 0 $?
check_contains "within the grace: warned" '"grace")' "$out"
check_contains "within the grace: how long" "still used for" "$out"

start_gateway "$T/grace.conf"
check_contains "grace warning logged at start" "still used for" "$(cat "$T/gateway.log")"
check "grace: valid client accepted with the stale CRL" 200 "$(gw_status alice /public/a)"
check "grace: the stale CRL still revokes" 000 "$(gw_status revoked /public/a)"
check_contains "grace: audited as revoked" '"reason":"revoked"' "$(cat "$T/audit.log")"

# A reload onto a config in "fail" mode with the same stale CRL is refused: old one serves.
cp "$T/fail.conf" "$T/grace.conf"
kill -HUP "$GW_PID"
for ((i = 0; i < 50; i++)); do grep -q "reload failed" "$T/gateway.log" && break; sleep 0.1; done
check_contains "fail-mode reload refused, file named" "$T/stale.pem: CRL nextUpdate" "$(grep 'reload:' "$T/gateway.log")"
check "old generation still serves" 200 "$(gw_status alice /public/a)"
stop_pid "$GW_PID"

# Without grace the same CRL at run time would fail every client: the reason recorded.
# (Loaded fresh, it went stale later: simulated with a CRL that expires in 2 seconds.)
openssl ca -gencrl -batch -config "$T/ca/ca.cnf" -keyfile "$PKI/ca.key" -cert "$PKI/ca.crt" \
	-crl_lastupdate "$(ago 60)" -crl_nextupdate "$(ago -2)" -out "$T/short.crl" 2>/dev/null
cat "$T/short.crl" "$PKI/inter.crl" >"$T/stale.pem"
conf "$T/short.conf" ""
start_gateway "$T/short.conf"
sleep 3
check "fail mode, CRL went stale while running: client refused" 000 "$(gw_status alice /public/a)"
check_contains "audited as crl_problem" '"reason":"crl_problem"' "$(cat "$T/audit.log")"
stop_pid "$GW_PID"

# ---- expiry warnings ----
CA=$T/expiring-ca
"$GATEWAYCTL" pki init --dir "$CA" --days 10 >/dev/null
"$GATEWAYCTL" pki issue --dir "$CA" --cn localhost --server --not-after +5d >/dev/null
"$GATEWAYCTL" pki issue --dir "$CA" --cn gateway --not-after +3d >/dev/null
write_config "$T/exp.conf"
sed -i -e "s|\"$PKI/server.crt\"|\"$CA/issued/localhost.crt\"|" \
	-e "s|\"$PKI/server.key\"|\"$CA/issued/localhost.key\"|" \
	-e "s|\"$PKI/client-cas.pem\"|\"$CA/ca.crt\"|" -e "s|\"$PKI/crls.pem\"|\"$CA/crl.pem\"|" \
	-e "s|\"$PKI/gw-client.crt\"|\"$CA/issued/gateway.crt\"|" \
	-e "s|\"$PKI/gw-client.key\"|\"$CA/issued/gateway.key\"|" "$T/exp.conf"
out=$("$GATEWAYD" -t -c "$T/exp.conf" 2>&1)
check "expiring certificates: -t passes" 0 $?
check_contains "server certificate warned" "server certificate CN=localhost expires in 5 day(s)" "$out"
check_contains "client CA warned" "client CA certificate CN=Gateway Client CA expires in 10 day(s)" "$out"
check_contains "upstream client certificate warned" "upstream client certificate CN=gateway expires in 3 day(s)" "$out"
check_contains "warning at the cert line" "$T/exp.conf:$(line_of "$T/exp.conf" "$CA/issued/localhost.crt"): " "$out"
out=$("$GATEWAYD" -t -c "$T/grace.conf" 2>&1)
check_not_contains "a year of validity: no expiry warning" "expires in" "$out"
finish
