#!/usr/bin/env bash
# demo.sh: quick start. Installs what is missing, builds, generates a dev PKI in ./demo,
# starts two demo TLS backends and gatewayd on its embedded default configuration, and
# prints curl commands to try. Runs in the foreground until Ctrl-C.
#   --smoke   run the printed commands, check their answers, stop everything, exit 0/1
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1

# GW_DEMO_BUILD: use an existing build (the test suite runs the smoke mode this way);
# GW_DEMO_DIR: where the PKI and logs go (default ./demo).
build=${GW_DEMO_BUILD:-$src/build}
if [ -z "${GW_DEMO_BUILD:-}" ]; then
	bash "$src/scripts/install-deps.sh"
	bash "$src/scripts/build.sh" "$build"
fi

demo=${GW_DEMO_DIR:-$src/demo}
bash "$src/tests/tools/mkpki.sh" "$demo" >/dev/null
cat "$demo/ca.crt" "$demo/inter.crt" >"$demo/client-cas.pem"
rm -f "$demo/audit.log"

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

cd "$demo"
for i in 1 2; do
	"$build/tests/tools/gw_testbackend" --listen "127.0.0.1:900$i" --cert backend.crt --key backend.key \
		--ca gw-client-ca.crt --name "demo-backend-$i" --ready-file "backend$i.ready" >"backend$i.log" 2>&1 &
	pids+=($!)
done
rm -f gateway.ready
# No -c: the embedded default configuration (conf/default.conf), relative to this directory.
"$build/gateway/gatewayd" --ready-file gateway.ready 2> >(tee gateway.log >&2) &
pids+=($!)
for _ in $(seq 1 50); do [ -s gateway.ready ] && break; sleep 0.1; done
[ -s gateway.ready ] || { echo "gatewayd did not start (see demo/gateway.log)"; exit 1; }

c="curl -sS --cacert $demo/server-ca.crt"
cat <<MSG

gatewayd is listening on https://localhost:8443 with two demo backends (127.0.0.1:9001, :9002).
Dev PKI and the audit log are in $demo. Try:

  # allowed: alice may read /public and /api
  $c --cert $demo/alice.crt --key $demo/alice.key https://localhost:8443/public/hello
  # denied by policy (403): bob may only read /public
  $c --cert $demo/bob.crt --key $demo/bob.key https://localhost:8443/api/orders -i
  # denied by an explicit deny rule (403): alice and /api/admin
  $c --cert $demo/alice.crt --key $demo/alice.key https://localhost:8443/api/admin -i
  # no client certificate: the TLS handshake itself fails
  $c https://localhost:8443/public/hello
  # revoked certificate (CRL): the handshake fails, the reason is in the log and audit log
  $c --cert $demo/revoked.crt --key $demo/revoked.key https://localhost:8443/public/hello
  # the audit trail
  tail -n 5 $demo/audit.log

MSG

if [ "$smoke" -eq 1 ]; then
	rc=0
	expect() {
		local want=$1
		shift
		local got
		got=$($c -o /dev/null -w '%{http_code}' "$@" 2>/dev/null || true)
		if [ "$got" = "$want" ]; then echo "ok: $want $*"; else echo "FAIL: expected $want, got $got: $*"; rc=1; fi
	}
	expect 200 --cert alice.crt --key alice.key https://localhost:8443/public/hello
	expect 403 --cert bob.crt --key bob.key https://localhost:8443/api/orders
	expect 403 --cert alice.crt --key alice.key https://localhost:8443/api/admin
	expect 000 https://localhost:8443/public/hello
	expect 000 --cert revoked.crt --key revoked.key https://localhost:8443/public/hello
	sleep 0.3
	if grep -q '"reason":"revoked"' audit.log; then echo "ok: audit log has the revoked handshake"; else echo "FAIL: no revoked record"; rc=1; fi
	exit $rc
fi
echo "Ctrl-C stops the gateway and the backends."
wait "${pids[-1]}"
