#!/usr/bin/env bash
# profile.sh [--build DIR] [--out DIR] [--seconds S] [--mode keepalive|handshake]
#
# Profiles one gatewayd worker under load, set up as bench/compare.sh sets it up (gateway
# pinned to core 1, gw_loadgen and the TLS backend to core 0): `perf record` with DWARF
# call graphs when perf can sample (software cpu-clock is enough, VMs rarely expose
# hardware counters), else valgrind --tool=callgrind on a shorter, slower run. Prints the
# top functions by self time and by inclusive time; the raw data stays in OUT.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build out='' secs=10 mode=keepalive
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift ;;
	--out) out=$2; shift ;;
	--seconds) secs=$2; shift ;;
	--mode) mode=$2; shift ;;
	*) echo "usage: $0 [--build DIR] [--out DIR] [--seconds S] [--mode keepalive|handshake]" >&2; exit 2 ;;
	esac
	shift
done
out=${out:-$(mktemp -d /tmp/gwprof.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
PKI=$out/pki
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT

bash "$src/tests/tools/mkpki.sh" "$PKI" >/dev/null || exit 2
cat "$PKI/ca.crt" "$PKI/inter.crt" >"$PKI/client-cas.pem"
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_file() {
	for _ in $(seq 100); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

rm -f "$out/be.ready" # an earlier run's file in a reused --out would name a dead port
taskset -c 0 "$build/tests/tools/gw_testbackend" --listen 127.0.0.1:0 --ready-file "$out/be.ready" \
	--cert "$PKI/backend.crt" --key "$PKI/backend.key" --ca "$PKI/gw-client-ca.crt" --name b1 \
	>"$out/backend.log" 2>&1 &
PIDS+=($!)
wait_file "$out/be.ready" || { echo "backend did not start" >&2; exit 1; }
bport=$(head -n1 "$out/be.ready")
port=$(free_port)
cat >"$out/gw.conf" <<EOF
$([ "$(id -u)" = 0 ] && echo "allow_root = true;")
workers = 1;
audit = { path = "$out/gw-audit.log"; };
listeners = ( { address = "127.0.0.1:$port";
  tls = { cert = "$PKI/server.crt"; key = "$PKI/server.key"; client_ca = "$PKI/client-cas.pem";
          crl = [ "$PKI/crls.pem" ]; }; } );
timeouts = { idle = 300; };
clusters = ( { name = "app"; servers = ( { address = "127.0.0.1:$bport"; name = "backend.test"; } );
  tls = { ca = "$PKI/backend-ca.crt"; cert = "$PKI/gw-client.crt"; key = "$PKI/gw-client.key"; };
  pool = { max_idle = 64; idle_timeout = 300; }; } );
routes = ( { prefix = "/"; cluster = "app"; } );
policy = ( { cn = "alice"; allow = [ "/" ]; } );
EOF

lg_args=(--url "https://127.0.0.1:$port/status/200" --servername localhost -H "Host: localhost"
	--cert "$PKI/alice.crt" --key "$PKI/alice.key" --ca "$PKI/server-ca.crt" --tls13 -c 32 --json)
[ "$mode" = handshake ] && lg_args+=(--new-conn)

if perf record -e cpu-clock -o /dev/null true >/dev/null 2>&1; then
	taskset -c 1 "$build/gateway/gatewayd" -c "$out/gw.conf" >"$out/gw.log" 2>&1 &
	gw=$!
	PIDS+=("$gw")
	sleep 1
	taskset -c 0 "$build/bench/gw_loadgen" "${lg_args[@]}" -d $((secs + 6)) >"$out/load.json" 2>"$out/load.err" &
	lgp=$!
	sleep 3
	perf record -e cpu-clock -F 1999 --call-graph dwarf,32768 -o "$out/perf.data" -p "$gw" \
		-- sleep "$secs" >"$out/perf-record.log" 2>&1
	wait "$lgp"
	echo "== load: $(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.0f req/s ok, %d errors" % (j["ok_rps"], j["errors"]["total"]))' "$out/load.json")"
	echo "== self time by library"
	perf report -i "$out/perf.data" --no-children --sort dso --stdio 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -n 12
	echo "== self time (top 30)"
	perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -n 30
	echo "== inclusive time (top 40)"
	perf report -i "$out/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
		grep -E '^ +[0-9.]+%' | head -n 40
else
	echo "== perf cannot sample here: callgrind on a short run"
	taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
		"$build/gateway/gatewayd" -c "$out/gw.conf" >"$out/gw.log" 2>&1 &
	gw=$!
	PIDS+=("$gw")
	sleep 5
	taskset -c 0 "$build/bench/gw_loadgen" "${lg_args[@]}" -d "$secs" >"$out/load.json" 2>"$out/load.err"
	kill -INT "$gw"
	wait "$gw"
	callgrind_annotate --inclusive=no "$out/callgrind.out" | head -n 40
	callgrind_annotate --inclusive=yes "$out/callgrind.out" | head -n 50
fi
echo "== data in $out"
