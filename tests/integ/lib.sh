# lib.sh: shared harness for the integration tests (sourced, never run).
#
# Every test gets its own temp dir with a fresh PKI (tests/tools/mkpki.sh), starts the
# real gatewayd and real TLS backends on 127.0.0.1 with port 0 (reading the bound ports
# back from ready files), talks to them with real clients (curl --cert, openssl
# s_client, gw_testclient), and on exit kills only the PIDs it started. On failure the
# gateway and backend logs are dumped so CI output says what happened.

set -uo pipefail

GW_SRC=${GW_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
GW_BUILD=${GW_BUILD:-$GW_SRC/build}
GATEWAYD=$GW_BUILD/gateway/gatewayd
GATEWAYCTL=$GW_BUILD/gateway/gatewayctl
BACKEND=$GW_BUILD/tests/tools/gw_testbackend
TESTCLIENT=$GW_BUILD/tests/tools/gw_testclient

T=$(mktemp -d /tmp/gwtest.XXXXXX)
PKI=$T/pki
PIDS=()
FAILS=0
CHECKS=0
GW_PID=
GW_PORT=

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	# Under the sanitizer build any report from a process we ran fails the test, even
	# when every check passed (leaks show up only at exit, after the checks).
	local san
	san=$(grep -l -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$T"/*.log 2>/dev/null)
	if [ -n "$san" ]; then
		echo "FAIL: sanitizer report in: $san"
		grep -h -A 30 -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" $san | head -n 80
		FAILS=$((FAILS + 1))
	fi
	if [ "$FAILS" -ne 0 ] || [ -n "${GW_KEEP:-}" ]; then
		echo "--- logs kept in $T"
		for f in "$T"/*.log; do
			[ -f "$f" ] || continue
			echo "--- $f (last 40 lines)"
			tail -n 40 "$f"
		done
	else
		rm -rf "$T"
	fi
	[ "$FAILS" -eq 0 ] || exit 1
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}

pass() {
	echo "ok: $*"
}

# check DESCRIPTION EXPECTED ACTUAL
check() {
	CHECKS=$((CHECKS + 1))
	if [ "$2" == "$3" ]; then
		pass "$1"
	else
		fail "$1: expected [$2], got [$3]"
	fi
}

# check_contains DESCRIPTION NEEDLE HAYSTACK
check_contains() {
	CHECKS=$((CHECKS + 1))
	if [[ "$3" == *"$2"* ]]; then
		pass "$1"
	else
		fail "$1: [$2] not found in [${3:0:600}]"
	fi
}

check_not_contains() {
	CHECKS=$((CHECKS + 1))
	if [[ "$3" != *"$2"* ]]; then
		pass "$1"
	else
		fail "$1: [$2] unexpectedly found"
	fi
}

# Ends the test: a test that checked nothing is a failure, not a pass.
finish() {
	if [ "$CHECKS" -eq 0 ]; then
		echo "FAIL: no checks ran"
		exit 1
	fi
	echo "$((CHECKS - FAILS)) passed, $FAILS failed"
	[ "$FAILS" -eq 0 ]
	exit $?
}

# client_ca_db: a fresh `openssl ca` database for the test PKI's client CA in $T/ca (nothing
# revoked yet; CRLs valid 30 days unless dated explicitly). Its config is $T/ca/ca.cnf.
client_ca_db() {
	mkdir -p "$T/ca"
	: >"$T/ca/index.txt"
	echo 01 >"$T/ca/crlnumber"
	cat >"$T/ca/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $T/ca/index.txt
crlnumber = $T/ca/crlnumber
default_md = sha256
default_crl_days = 30
CNF
}

# empty_client_crl OUT: an empty CRL of the client CA, for tests that start with nothing
# revoked.
empty_client_crl() {
	client_ca_db
	openssl ca -gencrl -batch -config "$T/ca/ca.cnf" -keyfile "$PKI/ca.key" -cert "$PKI/ca.crt" \
		-out "$1" 2>/dev/null
}

make_pki() {
	bash "$GW_SRC/tests/tools/mkpki.sh" "$PKI" >/dev/null || {
		echo "mkpki failed"
		exit 1
	}
	cat "$PKI/ca.crt" "$PKI/inter.crt" >"$PKI/client-cas.pem"
}

# wait_file FILE [TENTHS]: bounded wait for a ready file.
wait_file() {
	local i
	for ((i = 0; i < ${2:-100}; i++)); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# start_backend NAME [extra args]: sets BPORT_NAME and BPID_NAME.
start_backend() {
	local name=$1
	shift
	local ready=$T/backend-$name.ready
	rm -f "$ready"
	"$BACKEND" --listen 127.0.0.1:0 --ready-file "$ready" --cert "$PKI/backend.crt" \
		--key "$PKI/backend.key" --ca "$PKI/gw-client-ca.crt" --name "$name" "$@" \
		>"$T/backend-$name.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	if ! wait_file "$ready"; then
		echo "backend $name did not start"
		exit 1
	fi
	printf -v "BPORT_$name" '%s' "$(head -n1 "$ready")"
	printf -v "BPID_$name" '%s' "$pid"
}

# start_gateway CONF: starts gatewayd, sets GW_PID and GW_PORT (first listener).
start_gateway() {
	local conf=$1
	shift
	local ready=$T/gw.ready
	rm -f "$ready"
	"$GATEWAYD" -c "$conf" --ready-file "$ready" "$@" >>"$T/gateway.log" 2>&1 &
	GW_PID=$!
	PIDS+=("$GW_PID")
	if ! wait_file "$ready"; then
		echo "gatewayd did not start"
		cat "$T/gateway.log"
		exit 1
	fi
	GW_PORT=$(sed -n 's/^listen 127.0.0.1:\([0-9]*\)$/\1/p' "$ready" | head -n1)
}

# stop_pid PID: stop one process we started and wait for it.
stop_pid() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# write_config FILE [extra policy rules] : the standard test config with two backends
# of cluster "app" on BPORT_b1/BPORT_b2 (start them first). Extra text in $EXTRA_TOP.
write_config() {
	local file=$1
	local routes=${ROUTES:-'{ prefix = "/"; cluster = "app"; }'}
	local servers=${SERVERS:-"{ address = \"127.0.0.1:$BPORT_b1\"; name = \"backend.test\"; }"}
	# CI runs as root: the gateway refuses that unless told (RUN_AS overrides, e.g. user =).
	cat >"$file" <<EOF
workers = ${WORKERS:-2};
${EXTRA_TOP:-}
${RUN_AS:-allow_root = true;}
audit = { path = "$T/audit.log"; };
listeners = (
  {
    address = "127.0.0.1:0";
    tls = {
      cert = "$PKI/server.crt";
      key = "$PKI/server.key";
      client_ca = "$PKI/client-cas.pem";
      crl = [ "$PKI/crls.pem" ];
    };
  }
);
timeouts = { upstream_connect = ${CONNECT_TIMEOUT:-5}; upstream_response = ${RESPONSE_TIMEOUT:-30}; ${EXTRA_TIMEOUTS:-} };
clusters = (
  {
    name = "app";
    servers = ( $servers );
    tls = { ca = "$PKI/backend-ca.crt"; cert = "$PKI/gw-client.crt"; key = "$PKI/gw-client.key"; };
    ${EXTRA_CLUSTER:-}
  }
);
routes = (
  $routes
  ${EXTRA_ROUTES:-}
);
policy = (
  { cn = "alice"; allow = [ "/public", "/api", "/bytes", "/upload" ]; },
  { cn = "alice"; deny = [ "/api/admin" ]; },
  { cn = "bob"; allow = [ "/public" ]; },
  { cn = "admin"; allow = [ "/admin" ]; },
  { cn = "chain"; allow = [ "/public" ]; },
  { spiffe = "spiffe://example.org/ns/prod/sa/web"; allow = [ "/api" ]; }
  ${EXTRA_POLICY:-}
);
EOF
}

# gw_curl CERTNAME PATH [curl args...]: mTLS request through the gateway.
gw_curl() {
	local who=$1 path=$2
	shift 2
	local certargs=()
	if [ "$who" != "-" ]; then
		certargs=(--cert "$PKI/$who.crt" --key "$PKI/$who.key")
	fi
	curl -sS --max-time 20 --cacert "$PKI/server-ca.crt" "${certargs[@]}" \
		--resolve "localhost:$GW_PORT:127.0.0.1" "$@" "https://localhost:$GW_PORT$path"
}

# gw_status CERTNAME PATH [curl args]: just the HTTP status (000 = no response).
gw_status() {
	gw_curl "$@" -o /dev/null -w '%{http_code}' 2>/dev/null
}

# backend_stats NAME: the backend's own counters, fetched directly (not via the gateway).
backend_stats() {
	local port_var="BPORT_$1"
	curl -sS --max-time 5 --cacert "$PKI/backend-ca.crt" --cert "$PKI/gw-client.crt" \
		--key "$PKI/gw-client.key" --resolve "backend.test:${!port_var}:127.0.0.1" \
		"https://backend.test:${!port_var}/__stats"
}

# json_get JSON KEY: a top-level value from a JSON document.
json_get() {
	python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("null" if v is None else (json.dumps(v) if isinstance(v,(dict,list)) else v))' "$1" "$2"
}

# testclient ARGS: raw TLS client as alice against the gateway.
testclient() {
	"$TESTCLIENT" --connect "127.0.0.1:$GW_PORT" --cert "$PKI/alice.crt" --key "$PKI/alice.key" \
		--ca "$PKI/server-ca.crt" --servername localhost "$@"
}

# ---- helpers added for t050..t080 (streaming, pool, upstream errors, identity) ----

# free_port: a TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# server_entry PORT [NAME]: one servers = (...) element for write_config/extra_cluster.
server_entry() {
	printf '{ address = "127.0.0.1:%s"; name = "%s"; }' "$1" "${2:-backend.test}"
}

# extra_cluster NAME SERVERS [TEXT]: config text that, appended to EXTRA_CLUSTER, closes
# the "app" cluster of write_config and adds another one (same TLS settings), e.g.
#   EXTRA_CLUSTER+=$(extra_cluster down "$(server_entry 1)")
extra_cluster() {
	printf '}, { name = "%s"; servers = ( %s ); tls = { ca = "%s"; cert = "%s"; key = "%s"; }; %s' \
		"$1" "$2" "$PKI/backend-ca.crt" "$PKI/gw-client.crt" "$PKI/gw-client.key" "${3:-}"
}

# backend_stats_host NAME HOST: like backend_stats, for a backend whose certificate is
# issued for HOST rather than backend.test.
backend_stats_host() {
	local port_var="BPORT_$1"
	curl -sS --max-time 5 --cacert "$PKI/backend-ca.crt" --cert "$PKI/gw-client.crt" \
		--key "$PKI/gw-client.key" --resolve "$2:${!port_var}:127.0.0.1" \
		"https://$2:${!port_var}/__stats"
}

# audit_record ID: the audit line of request ID (empty if none).
audit_record() {
	grep -F "\"request_id\":\"$1\"" "$T/audit.log" 2>/dev/null | head -n1
}

# gw_vm KEY: a /proc/$GW_PID/status value in kB (VmHWM = peak RSS, VmRSS = current).
gw_vm() {
	sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB$/\1/p" "/proc/$GW_PID/status"
}

# is_sanitized BINARY: true when built with AddressSanitizer (RSS limits do not apply).
is_sanitized() {
	grep -q -a -m1 '__asan_init' "$1"
}
