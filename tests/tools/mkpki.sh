#!/usr/bin/env bash
# mkpki.sh DIR: writes the complete test PKI the unit and integration tests code against
# (CAs, client/server/backend certificates, CRLs) into DIR. Everything is ECDSA P-256 except
# server-rsa. Re-running wipes and recreates only the files this script owns.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)

owned=(ca inter server-ca server server-rsa alice bob admin Admin web expired notyet revoked
	selfsigned untrusted other-ca leafca badeku twouri chain backend-ca backend backend-wrong
	gw-client-ca gw-client)
for n in "${owned[@]}"; do
	rm -f "$out/$n.crt" "$out/$n.key"
done
rm -f "$out/chain-full.crt" "$out/ca.crl" "$out/inter.crl" "$out/crls.pem" "$out/README"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A private config so the system openssl.cnf cannot add or alter extensions. The CA
# paths come from the environment because one config serves every CA.
cat >"$work/openssl.cnf" <<'CNF'
[ca]
default_ca = ca_any
[ca_any]
dir = $ENV::CADIR
database = $dir/index.txt
new_certs_dir = $dir
certificate = $ENV::CACERT
private_key = $ENV::CAKEY
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = pol_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[pol_any]
commonName = supplied
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused
CNF
export OPENSSL_CONF="$work/openssl.cnf"
export CADIR=$work CACERT=/dev/null CAKEY=/dev/null

ext_ca='basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash'
ext_inter='basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always'
ext_client='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always'
ext_server='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always'

q() { # run quietly, show output only on failure
	local log=$work/log
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		echo "mkpki: failed: $*" >&2
		exit 1
	fi
}

genkey() { # NAME [rsa]
	if [ "${2:-}" = rsa ]; then
		q openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out/$1.key"
	else
		q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/$1.key"
	fi
	chmod 600 "$out/$1.key"
}

# selfsign NAME CN EXTTEXT: self-signed certificate, 10 years.
selfsign() {
	genkey "$1"
	# req in OpenSSL 3.0 has no -extfile: append the section to a copy of the config.
	{ cat "$work/openssl.cnf"; printf '[x]\n%s\n' "$3"; } >"$work/req.cnf"
	q openssl req -new -x509 -key "$out/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
		-config "$work/req.cnf" -extensions x -out "$out/$1.crt"
}

# mkca NAME CN: self-signed root plus its `openssl ca` database for issuing and CRLs.
mkca() {
	selfsign "$1" "$2" "$ext_ca"
	initdb "$1"
}

initdb() {
	mkdir -p "$work/db-$1"
	: >"$work/db-$1/index.txt"
	openssl rand -hex 8 >"$work/db-$1/serial"
	echo 01 >"$work/db-$1/crlnumber"
}

# withca CA CMD...: runs an `openssl ca` command against CA's database.
withca() {
	local ca=$1
	shift
	CADIR="$work/db-$ca" CACERT="$out/$ca.crt" CAKEY="$out/$ca.key" q "$@"
}

# issue NAME CN CA EXTTEXT [STARTDATE ENDDATE] [rsa]
issue() {
	local name=$1 cn=$2 ca=$3 ext=$4 start=${5:-} end=${6:-} alg=${7:-}
	genkey "$name" "$alg"
	q openssl req -new -key "$out/$name.key" -subj "/CN=$cn" -out "$work/$name.csr"
	printf '[x]\n%s\n' "$ext" >"$work/ext.cnf"
	local dates=(-days 365)
	if [ -n "$start" ]; then
		dates=(-startdate "$start" -enddate "$end")
	fi
	withca "$ca" openssl ca -batch -notext -config "$work/openssl.cnf" -in "$work/$name.csr" \
		-out "$out/$name.crt" -extfile "$work/ext.cnf" -extensions x "${dates[@]}"
}

san() { # EXTTEXT SAN -> EXTTEXT with a subjectAltName line
	printf '%s\nsubjectAltName=%s' "$1" "$2"
}

# ---- client-certificate CA and its intermediate ----
mkca ca "Test Client CA"
issue inter "Test Intermediate CA" ca "$ext_inter"
initdb inter

issue alice alice ca "$ext_client"
issue bob bob ca "$ext_client"
issue admin admin ca "$ext_client"
issue Admin Admin ca "$ext_client"
issue web web ca "$(san "$ext_client" URI:spiffe://example.org/ns/prod/sa/web)"
issue twouri twouri ca "$(san "$ext_client" URI:spiffe://example.org/a,URI:spiffe://example.org/b)"
issue expired expired ca "$ext_client" 20200101000000Z 20200601000000Z
issue notyet notyet ca "$ext_client" 20400101000000Z 20410101000000Z
issue revoked revoked ca "$ext_client"
issue leafca leafca ca 'basicConstraints=critical,CA:TRUE
keyUsage=critical,digitalSignature,keyCertSign
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always'
issue badeku badeku ca "${ext_client/clientAuth/serverAuth}"
issue chain chain inter "$ext_client"
cat "$out/chain.crt" "$out/inter.crt" >"$out/chain-full.crt"

# keyUsage is left out on purpose: with keyUsage lacking keyCertSign OpenSSL 3 does not
# treat the certificate as self-signed and would report "unknown issuer" instead.
selfsign selfsigned selfsigned 'basicConstraints=critical,CA:FALSE
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash'

mkca other-ca "Other CA"
issue untrusted untrusted other-ca "$ext_client"

withca ca openssl ca -config "$work/openssl.cnf" -revoke "$out/revoked.crt" -crl_reason keyCompromise
withca ca openssl ca -config "$work/openssl.cnf" -gencrl -crldays 30 -out "$out/ca.crl"
withca inter openssl ca -config "$work/openssl.cnf" -gencrl -crldays 30 -out "$out/inter.crl"
cat "$out/ca.crl" "$out/inter.crl" >"$out/crls.pem"

# ---- the gateway's own server certificate ----
mkca server-ca "Test Server CA"
issue server localhost server-ca "$(san "$ext_server" DNS:localhost,IP:127.0.0.1)"
issue server-rsa localhost server-ca "$(san "$ext_server" DNS:localhost,IP:127.0.0.1)" "" "" rsa

# ---- backends, and the client certificate the gateway presents to them ----
mkca backend-ca "Test Backend CA"
issue backend backend.test backend-ca "$(san "$ext_server" DNS:backend.test)"
issue backend-wrong wrong.test backend-ca "$(san "$ext_server" DNS:wrong.test)"
mkca gw-client-ca "Test Gateway Client CA"
issue gw-client gateway gw-client-ca "$ext_client"

echo "test PKI: CAs ca inter server-ca backend-ca gw-client-ca other-ca; clients alice bob admin Admin web twouri expired notyet revoked selfsigned untrusted leafca badeku chain(+chain-full); servers server server-rsa backend backend-wrong gw-client; CRLs ca.crl inter.crl crls.pem" >"$out/README"
echo "mkpki: ${#owned[@]} certificates, 2 CRLs in $out"
