#!/usr/bin/env bash
# t016: client-side TLS session resumption. For each setting of session_tickets (absent:
# the stateful default; false: the same; true: stateless tickets), a client that reconnects
# with the session its last connection gave it resumes every time (2nd, 3rd and 4th
# connection in a row; under TLS 1.3 each of them brings a new ticket), another client in
# between keeps its own identity, and the backend sees the client's verified identity on
# resumed connections. TLS 1.2 resumes too. After a CRL update and a reload, a session of
# the now revoked certificate does not resume: the full handshake refuses the certificate.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1

# The client CA's CRL starts empty, so "revoked" is not revoked yet (as in t095).
empty_client_crl "$T/empty.crl"

# conn WHO VERSION [s_client args]: one request over openssl s_client, its whole output.
conn() {
	local who=$1 ver=$2
	shift 2
	printf 'GET /public/resume HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
		timeout 20 openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost \
			-CAfile "$PKI/server-ca.crt" -cert "$PKI/$who.crt" -key "$PKI/$who.key" "$ver" \
			-ign_eof "$@" 2>&1
}

# hs OUTPUT: "New, TLSv1.3", "Reused, TLSv1.2", ... (empty: no handshake).
hs() {
	grep -o -m1 -E '^(New|Reused), TLSv1\.[23]' <<<"$1"
}

# hdr OUTPUT NAME: a request header as the backend saw it (its echoed JSON body).
hdr() {
	local body
	body=$(grep -m1 '^{' <<<"$1")
	[ -n "$body" ] || return 0
	json_get "$(json_get "$body" headers)" "$2"
}

# new_ticket PREV NEXT: NEXT was written (a ticket arrived) and differs from PREV.
new_ticket() {
	if [ -s "$2" ] && ! cmp -s "$1" "$2"; then echo yes; else echo no; fi
}

# run_mode LABEL TICKETS: a gateway whose listener has the line TICKETS (may be empty).
run_mode() {
	local label=$1 tickets=$2 out i who fp gen
	cat "$T/empty.crl" "$PKI/inter.crl" >"$T/crl.pem"
	EXTRA_POLICY=', { cn = "revoked"; allow = [ "/public" ]; }' write_config "$T/gw-$label.conf"
	sed -i "s|\"$PKI/crls.pem\" \];|\"$T/crl.pem\" ];\n      $tickets|" "$T/gw-$label.conf"
	start_gateway "$T/gw-$label.conf"

	# TLS 1.3: alice and bob take turns, each offering the session of its last connection.
	for who in alice bob; do
		out=$(conn "$who" -tls1_3 -sess_out "$T/$label-$who-1")
		check "$label: $who's first connection is a full TLS 1.3 handshake" "New, TLSv1.3" "$(hs "$out")"
		check "$label: $who's first connection gets a ticket" yes "$(new_ticket /dev/null "$T/$label-$who-1")"
		check "$label: backend sees $who" "$who" "$(hdr "$out" x-client-cn)"
		printf -v "fp_$who" '%s' "$(hdr "$out" x-client-cert-sha256)"
	done
	for i in 2 3 4; do
		for who in alice bob; do
			out=$(conn "$who" -tls1_3 -sess_in "$T/$label-$who-$((i - 1))" -sess_out "$T/$label-$who-$i")
			check "$label: $who's connection $i resumes" "Reused, TLSv1.3" "$(hs "$out")"
			check "$label: $who's connection $i brings a new ticket" yes \
				"$(new_ticket "$T/$label-$who-$((i - 1))" "$T/$label-$who-$i")"
			check_contains "$label: $who's resumed connection $i is served" "HTTP/1.1 200" "$out"
			check "$label: backend sees $who on resumed connection $i" "$who" "$(hdr "$out" x-client-cn)"
			fp="fp_$who"
			check "$label: same certificate fingerprint on resumed connection $i" "${!fp}" \
				"$(hdr "$out" x-client-cert-sha256)"
		done
	done

	# TLS 1.2: the same session resumes again and again.
	out=$(conn alice -tls1_2 -sess_out "$T/$label-tls12")
	check "$label: TLS 1.2 full handshake" "New, TLSv1.2" "$(hs "$out")"
	for i in 2 3 4; do
		out=$(conn alice -tls1_2 -sess_in "$T/$label-tls12")
		check "$label: TLS 1.2 connection $i resumes" "Reused, TLSv1.2" "$(hs "$out")"
		check "$label: backend sees alice on resumed TLS 1.2 connection $i" alice "$(hdr "$out" x-client-cn)"
	done

	# Revocation: a session of "revoked" resumes until a CRL update is reloaded.
	out=$(conn revoked -tls1_3 -sess_out "$T/$label-rev-1")
	check "$label: not yet revoked: full handshake" "New, TLSv1.3" "$(hs "$out")"
	out=$(conn revoked -tls1_3 -sess_in "$T/$label-rev-1" -sess_out "$T/$label-rev-2")
	check "$label: not yet revoked: resumes" "Reused, TLSv1.3" "$(hs "$out")"
	check "$label: not yet revoked: backend sees it" revoked "$(hdr "$out" x-client-cn)"
	cat "$PKI/ca.crl" "$PKI/inter.crl" >"$T/crl.pem"
	gen=$(grep -c "generation 2 in service" "$T/gateway.log")
	kill -HUP "$GW_PID"
	for _ in $(seq 1 100); do
		[ "$(grep -c "generation 2 in service" "$T/gateway.log")" -gt "$gen" ] && break
		sleep 0.1
	done
	check "$label: reload with the new CRL applied" $((gen + 1)) "$(grep -c "generation 2 in service" "$T/gateway.log")"
	out=$(conn revoked -tls1_3 -sess_in "$T/$label-rev-2")
	check_not_contains "$label: revoked certificate's session does not resume" "Reused," "$out"
	check_not_contains "$label: revoked certificate is not served" "HTTP/1.1 200" "$out"
	out=$(conn alice -tls1_3 -sess_in "$T/$label-alice-4")
	check "$label: after the reload alice makes a full handshake" "New, TLSv1.3" "$(hs "$out")"
	check "$label: and is served as alice" alice "$(hdr "$out" x-client-cn)"
	stop_pid "$GW_PID"
}

run_mode default ""
run_mode stateful "session_tickets = false;"
run_mode stateless "session_tickets = true;"
check_contains "the revoked certificate's refusals are audited" '"reason":"revoked"' "$(cat "$T/audit.log")"
finish
