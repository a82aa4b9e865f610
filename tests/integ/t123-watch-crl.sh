#!/usr/bin/env bash
# t123: watch_files. With polling on, a CRL replaced on disk cuts off the revoked
# certificate within a few seconds, without SIGHUP: first the file replaced in place
# (written aside, renamed over), then a cert-manager style symlink swap of the directory
# the config names. A corrupt CRL written by the watcher's trigger is refused (old
# generation serves on, file and reason logged) and its repair is picked up.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
CA=$T/ca
ctl() { "$GATEWAYCTL" pki "$@" >/dev/null; }

ca_status() {
	curl -sS --max-time 10 -o /dev/null -w '%{http_code}' --cacert "$PKI/server-ca.crt" \
		--cert "$CA/issued/$1.crt" --key "$CA/issued/$1.key" \
		--resolve "localhost:$GW_PORT:127.0.0.1" "https://localhost:$GW_PORT$2" 2>/dev/null
}

# until_status NAME PATH WANT: polls (bounded, 8 s) until NAME gets WANT; prints the last.
until_status() {
	local i got
	for ((i = 0; i < 40; i++)); do
		got=$(ca_status "$1" "$2")
		[ "$got" == "$3" ] && break
		sleep 0.2
	done
	echo "$got"
}

ctl init --dir "$CA"
for n in alice bob carol; do ctl issue --dir "$CA" --cn "$n"; done
# The CRL the config names is live/current/crl.pem, current being a symlink to a data dir.
mkdir -p "$T/live/data1"
cp "$CA/crl.pem" "$T/live/data1/crl.pem"
ln -s data1 "$T/live/current"

EXTRA_TOP='watch_files = 0.5;' EXTRA_POLICY=', { cn = "carol"; allow = [ "/public" ]; }' \
	write_config "$T/gw.conf"
sed -i -e "s|\"$PKI/client-cas.pem\"|\"$CA/ca.crt\"|" \
	-e "s|\"$PKI/crls.pem\"|\"$T/live/current/crl.pem\"|" "$T/gw.conf"
start_gateway "$T/gw.conf"
check "alice accepted" 200 "$(ca_status alice /public/a)"
check "bob accepted" 200 "$(ca_status bob /public/a)"

# 1. In place: revoke alice, regenerate the CRL, rename it over the old one; no signal.
ctl revoke --dir "$CA" "$CA/issued/alice.crt"
ctl crl --dir "$CA"
cp "$CA/crl.pem" "$T/live/data1/crl.new" && mv "$T/live/data1/crl.new" "$T/live/data1/crl.pem"
check "alice refused after the CRL changed on disk (no SIGHUP)" 000 "$(until_status alice /public/a 000)"
check_contains "watcher logged the file" "watch: $T/live/current/crl.pem changed; reloading" "$(cat "$T/gateway.log")"
check "bob still accepted" 200 "$(ca_status bob /public/a)"

# 2. Symlink swap: a new data dir with a CRL revoking bob, then current -> data2 atomically.
ctl revoke --dir "$CA" "$CA/issued/bob.crt"
ctl crl --dir "$CA"
mkdir "$T/live/data2"
cp "$CA/crl.pem" "$T/live/data2/crl.pem"
ln -s data2 "$T/live/next" && mv -T "$T/live/next" "$T/live/current"
check "bob refused after the symlink swap" 000 "$(until_status bob /public/a 000)"
check "watcher saw both changes" 2 "$(grep -cF "watch: $T/live/current/crl.pem changed" "$T/gateway.log")"

# 3. A corrupt CRL: the reload fails, the previous generation keeps serving.
gens=$(grep -c "generation [0-9]* in service" "$T/gateway.log")
echo "not a CRL" >"$T/live/data2/broken.pem"
mv "$T/live/data2/broken.pem" "$T/live/data2/crl.pem"
for ((i = 0; i < 40; i++)); do
	grep -q "reload failed: keeping generation" "$T/gateway.log" && break
	sleep 0.2
done
log=$(cat "$T/gateway.log")
check_contains "corrupt CRL: reload failed" "reload failed: keeping generation" "$log"
check_contains "corrupt CRL: file and reason logged" "$T/live/current/crl.pem: cannot parse CRL" "$log"
check "corrupt CRL: carol still served" 200 "$(ca_status carol /public/a)"
check "corrupt CRL: bob still refused" 000 "$(ca_status bob /public/a)"
cp "$CA/crl.pem" "$T/live/data2/crl.new" && mv "$T/live/data2/crl.new" "$T/live/data2/crl.pem"
for ((i = 0; i < 40; i++)); do
	[ "$(grep -c "generation [0-9]* in service" "$T/gateway.log")" -gt "$gens" ] && break
	sleep 0.2
done
check "repaired CRL: a new generation" 1 "$(($(grep -c "generation [0-9]* in service" "$T/gateway.log") > gens))"
check "repaired CRL: carol served" 200 "$(ca_status carol /public/a)"
finish
