#!/usr/bin/env bash
# t000-mkpki: tests/tools/mkpki.sh builds the test PKI every other test relies on; check
# that each certificate verifies (or fails) for exactly the reason its name promises.
set -uo pipefail

src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fails=0

fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

# ok NAME ARGS...: openssl verify must succeed.
ok() {
	local name=$1
	shift
	local outp
	if ! outp=$(cd "$d" && openssl verify "$@" "$name.crt" 2>&1); then
		fail "$name should verify ($*): $outp"
	fi
}

# bad NAME ERRNO ARGS...: openssl verify must fail with X509_V_ERR number ERRNO.
bad() {
	local name=$1 code=$2
	shift 2
	local outp
	if outp=$(cd "$d" && openssl verify "$@" "$name.crt" 2>&1); then
		fail "$name should not verify ($*)"
	elif ! grep -q "error $code at" <<<"$outp"; then
		fail "$name: expected error $code ($*), got: $outp"
	fi
}

start=$(date +%s)
if ! summary=$(bash "$src/tests/tools/mkpki.sh" "$d/pki" 2>&1); then
	echo "FAIL: mkpki.sh: $summary" >&2
	exit 1
fi
[ "$(wc -l <<<"$summary")" -eq 1 ] || fail "mkpki printed more than one line: $summary"
# Idempotent: a second run over the same directory must also succeed.
bash "$src/tests/tools/mkpki.sh" "$d/pki" >/dev/null || fail "second mkpki run"
[ $(($(date +%s) - start)) -lt 20 ] || fail "mkpki too slow"
d=$d/pki

C=(-CAfile ca.crt -purpose sslclient)
CRL=(-crl_check -CRLfile ca.crl)
for n in alice bob admin Admin web twouri; do
	ok $n "${C[@]}"
	ok $n "${C[@]}" "${CRL[@]}"
done
bad expired 10 "${C[@]}"                        # X509_V_ERR_CERT_HAS_EXPIRED
bad notyet 9 "${C[@]}"                          # X509_V_ERR_CERT_NOT_YET_VALID
ok revoked "${C[@]}"
bad revoked 23 "${C[@]}" "${CRL[@]}"            # X509_V_ERR_CERT_REVOKED
bad selfsigned 18 "${C[@]}"                     # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
bad untrusted 20 "${C[@]}"                      # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
ok untrusted -CAfile other-ca.crt -purpose sslclient
bad badeku 26 "${C[@]}"                         # X509_V_ERR_INVALID_PURPOSE
ok badeku -CAfile ca.crt -purpose sslserver
bad chain 20 "${C[@]}"
ok chain "${C[@]}" -untrusted inter.crt
ok chain "${C[@]}" -untrusted inter.crt -crl_check_all -CRLfile crls.pem
bad chain 3 "${C[@]}" -untrusted inter.crt -crl_check_all -CRLfile ca.crl # no inter CRL
ok chain-full "${C[@]}" -untrusted chain-full.crt
ok leafca "${C[@]}"
openssl x509 -in "$d/leafca.crt" -noout -ext basicConstraints | grep -q 'CA:TRUE' ||
	fail "leafca is not CA:TRUE"
openssl x509 -in "$d/alice.crt" -noout -ext basicConstraints | grep -q 'CA:FALSE' ||
	fail "alice is not CA:FALSE"
openssl x509 -in "$d/alice.crt" -noout -ext keyUsage | grep -q 'Digital Signature' ||
	fail "alice lacks digitalSignature"
openssl x509 -in "$d/alice.crt" -noout -subject | grep -q 'CN *= *alice$' || fail "alice CN"
openssl x509 -in "$d/web.crt" -noout -ext subjectAltName |
	grep -q 'URI:spiffe://example.org/ns/prod/sa/web' || fail "web URI SAN"
[ "$(openssl x509 -in "$d/twouri.crt" -noout -ext subjectAltName | grep -o 'URI:' | wc -l)" -eq 2 ] ||
	fail "twouri needs two URI SANs"
[ "$(grep -c 'BEGIN CERTIFICATE' "$d/chain-full.crt")" -eq 2 ] || fail "chain-full has 2 certs"

for n in server server-rsa; do
	ok $n -CAfile server-ca.crt -purpose sslserver -verify_hostname localhost
	ok $n -CAfile server-ca.crt -purpose sslserver -verify_ip 127.0.0.1
	bad $n 62 -CAfile server-ca.crt -verify_hostname other.test # HOSTNAME_MISMATCH
done
openssl x509 -in "$d/server-rsa.crt" -noout -text | grep -q 'rsaEncryption' || fail "server-rsa not RSA"
openssl x509 -in "$d/server.crt" -noout -text | grep -q 'prime256v1' || fail "server not P-256"
ok backend -CAfile backend-ca.crt -purpose sslserver -verify_hostname backend.test
bad backend-wrong 62 -CAfile backend-ca.crt -verify_hostname backend.test
ok backend-wrong -CAfile backend-ca.crt -verify_hostname wrong.test
ok gw-client -CAfile gw-client-ca.crt -purpose sslclient
bad gw-client 20 -CAfile ca.crt

# CRLs: signed by their CA, nextUpdate in the future, ca.crl lists revoked's serial.
openssl crl -in "$d/ca.crl" -CAfile "$d/ca.crt" -noout 2>&1 | grep -q 'verify OK' || fail "ca.crl sig"
openssl crl -in "$d/inter.crl" -CAfile "$d/inter.crt" -noout 2>&1 | grep -q 'verify OK' ||
	fail "inter.crl sig"
serial=$(openssl x509 -in "$d/revoked.crt" -noout -serial | cut -d= -f2)
openssl crl -in "$d/ca.crl" -noout -text | grep -qi "Serial Number: $serial" || fail "revoked serial"
[ "$(openssl crl -in "$d/inter.crl" -noout -text | grep -c 'Serial Number')" -eq 0 ] ||
	fail "inter.crl should be empty"
[ "$(grep -c 'BEGIN X509 CRL' "$d/crls.pem")" -eq 2 ] || fail "crls.pem has 2 CRLs"

# Every key matches its certificate and is private.
for k in "$d"/*.key; do
	n=${k%.key}
	[ "$(stat -c %a "$k")" = 600 ] || fail "$k mode $(stat -c %a "$k")"
	a=$(openssl pkey -in "$k" -pubout 2>/dev/null)
	b=$(openssl x509 -in "$n.crt" -noout -pubkey 2>/dev/null)
	[ -n "$a" ] && [ "$a" = "$b" ] || fail "$(basename "$k") does not match its certificate"
done
[ -s "$d/README" ] || fail "README missing"

if [ $fails -ne 0 ]; then
	echo "t000-mkpki: $fails failure(s)" >&2
	exit 1
fi
echo "t000-mkpki: ok"
