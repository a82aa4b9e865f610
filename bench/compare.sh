#!/usr/bin/env bash
# compare.sh: gatewayd against nginx and HAProxy, set up the same way, on this machine.
#
# Every contender terminates mTLS (client certificate required, verified against
# ca.crt + inter.crt with CRLs), allows only CN=alice, re-encrypts to ONE TLS backend
# (verifying backend.test, presenting gw-client.crt) over pooled keep-alive connections,
# and writes one access/audit log line per request. Same worker count, all pinned to the
# same core(s); the load generator and the backend are pinned apart. Scenarios run
# interleaved (gw, nginx, haproxy) x rounds; the table shows medians. See README.md.
#
# usage: bench/compare.sh [--rounds N] [--duration S] [--warmup S] [--conns N]
#          [--rate R] [--rate-conns N] [--idle N] [--workers N] [--server-cpus LIST]
#          [--load-cpus LIST] [--only gw,nginx,haproxy] [--build DIR] [--out DIR]
#          [--quick] [--no-install]
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)

rounds=3 dur=10 warm=2 conns=32 rate=2000 rate_conns=8 idle=2000 workers=1
srv_cpus=1 load_cpus=0 only="gw,nginx,haproxy" build=$src/build out='' install=1
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift ;;
	--duration) dur=$2; shift ;;
	--warmup) warm=$2; shift ;;
	--conns) conns=$2; shift ;;
	--rate) rate=$2; shift ;;
	--rate-conns) rate_conns=$2; shift ;;
	--idle) idle=$2; shift ;;
	--workers) workers=$2; shift ;;
	--server-cpus) srv_cpus=$2; shift ;;
	--load-cpus) load_cpus=$2; shift ;;
	--only) only=$2; shift ;;
	--build) build=$2; shift ;;
	--out) out=$2; shift ;;
	--quick) rounds=1 dur=3 warm=1 idle=300 ;;
	--no-install) install=0 ;;
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
out=${out:-$(mktemp -d /tmp/gwbench.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
PKI=$out/pki
RES=$out/results.tsv
PIDS=()

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
}
trap cleanup EXIT

# ---- prerequisites ----------------------------------------------------------------

if [ "$install" = 1 ] && ! { command -v nginx && command -v haproxy; } >/dev/null 2>&1; then
	log "installing nginx-light and haproxy"
	bash "$src/scripts/install-deps.sh" --bench >&2 || exit 2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
need=(gateway/gatewayd bench/gw_loadgen bench/hs_bench bench/idle_conns tests/tools/gw_testbackend)
for b in "${need[@]}"; do
	if [ ! -x "$build/$b" ]; then
		log "building the project in $build"
		bash "$src/scripts/build.sh" "$build" >&2 || exit 2
		break
	fi
done
LG=$build/bench/gw_loadgen
# Room for the idle connections on both ends (root may raise the hard limit).
ulimit -Hn 262144 2>/dev/null
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt $((idle + 1000)) ]; then
	echo "compare.sh: fd hard limit $(ulimit -Hn) is too low for --idle $idle" >&2
	exit 2
fi
ulimit -n "$(ulimit -Hn)"
fd_max=$(ulimit -n)
[ "$fd_max" = unlimited ] && fd_max=262144
# HAProxy reserves two descriptors per maxconn and refuses to start without them.
hap_maxconn=$(((fd_max - 200) / 2))
[ "$hap_maxconn" -gt 100000 ] && hap_maxconn=100000

bash "$src/tests/tools/mkpki.sh" "$PKI" >/dev/null || exit 2
cat "$PKI/ca.crt" "$PKI/inter.crt" >"$PKI/client-cas.pem"
cat "$PKI/server.crt" "$PKI/server.key" >"$PKI/server.pem"
cat "$PKI/gw-client.crt" "$PKI/gw-client.key" >"$PKI/gw-client.pem"
: >"$RES"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---- the physical bound: openssl speed and the in-memory handshake -------------------

crypto_bounds() {
	log "openssl speed (server core $srv_cpus)"
	taskset -c "$srv_cpus" openssl speed -seconds 2 ecdsap256 ecdhx25519 >"$out/speed.txt" 2>/dev/null
	log "hs_bench: OpenSSL's own cost of a TLS 1.3 mTLS handshake (BIO pair, one thread)"
	taskset -c "$srv_cpus" "$build/bench/hs_bench" --pki "$PKI" -n 300 --passes 3 >"$out/hs_bench.txt" ||
		echo "hs_bench failed" >>"$out/hs_bench.txt"
}

# ---- the backend -------------------------------------------------------------------

start_backend() {
	local ready=$out/backend.ready
	taskset -c "$load_cpus" "$build/tests/tools/gw_testbackend" --listen 127.0.0.1:0 \
		--ready-file "$ready" --cert "$PKI/backend.crt" --key "$PKI/backend.key" \
		--ca "$PKI/gw-client-ca.crt" --name b1 >"$out/backend.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		[ -s "$ready" ] && break
		sleep 0.1
	done
	BPORT=$(head -n1 "$ready")
	[ -n "$BPORT" ] || { echo "backend did not start" >&2; exit 1; }
}

# ---- contender configurations (MODE: default = stateless tickets; cache = server-side
# session cache, tickets naming cache entries, as nginx/HAProxy are usually tuned) -------

conf_gw() { # DIR PORT MODE
	local tickets=true
	[ "$3" = cache ] && tickets=false
	# Like nginx's master and HAProxy here, it stays root when started as root.
	local run_as=""
	[ "$(id -u)" = 0 ] && run_as="allow_root = true;"
	cat >"$1/gw.conf" <<EOF
$run_as
workers = $workers;
audit = { path = "$1/gw-audit.log"; };
listeners = ( { address = "127.0.0.1:$2";
  tls = { cert = "$PKI/server.crt"; key = "$PKI/server.key"; client_ca = "$PKI/client-cas.pem";
          crl = [ "$PKI/crls.pem" ]; session_tickets = $tickets; }; } );
timeouts = { idle = 300; };
clusters = ( { name = "app";
  servers = ( { address = "127.0.0.1:$BPORT"; name = "backend.test"; } );
  tls = { ca = "$PKI/backend-ca.crt"; cert = "$PKI/gw-client.crt"; key = "$PKI/gw-client.key"; };
  pool = { max_idle = 64; idle_timeout = 300; }; } );
routes = ( { prefix = "/"; cluster = "app"; } );
policy = ( { cn = "alice"; allow = [ "/" ]; } );
EOF
}

conf_nginx() { # DIR PORT MODE
	local sess="ssl_session_tickets on;"
	[ "$3" = cache ] && sess="ssl_session_tickets off; ssl_session_cache shared:SSL:20m;"
	mkdir -p "$1/nginx-tmp"
	cat >"$1/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $workers;
worker_rlimit_nofile 65536;
pid $1/nginx.pid;
error_log $1/nginx-error.log warn;
events { worker_connections 30000; }
http {
  access_log $1/nginx-access.log;
  client_body_temp_path $1/nginx-tmp/body;
  proxy_temp_path $1/nginx-tmp/proxy;
  fastcgi_temp_path $1/nginx-tmp/fastcgi;
  uwsgi_temp_path $1/nginx-tmp/uwsgi;
  scgi_temp_path $1/nginx-tmp/scgi;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  upstream app {
    server 127.0.0.1:$BPORT;
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$2 ssl;
    ssl_certificate $PKI/server.crt;
    ssl_certificate_key $PKI/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate $PKI/client-cas.pem;
    ssl_verify_client on;
    ssl_verify_depth 4;
    ssl_crl $PKI/crls.pem;
    $sess
    location / {
      if (\$ssl_client_s_dn !~ "(^|,)CN=alice(,|\$)") { return 403; }
      proxy_pass https://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Client-Cert-Serial \$ssl_client_serial;
      proxy_set_header X-Client-Dn \$ssl_client_s_dn;
      proxy_ssl_protocols TLSv1.2 TLSv1.3;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $PKI/backend-ca.crt;
      proxy_ssl_name backend.test;
      proxy_ssl_server_name on;
      proxy_ssl_certificate $PKI/gw-client.crt;
      proxy_ssl_certificate_key $PKI/gw-client.key;
      proxy_ssl_session_reuse on;
    }
  }
}
EOF
}

conf_haproxy() { # DIR PORT MODE
	local bindopt=""
	[ "$3" = cache ] && bindopt="no-tls-tickets"
	cat >"$1/haproxy.cfg" <<EOF
global
  nbthread $workers
  maxconn $hap_maxconn
  tune.ssl.cachesize 100000
  log stdout format raw local0 info
defaults
  mode http
  log global
  option httplog
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-request 10s
  timeout http-keep-alive 300s
frontend fe
  bind 127.0.0.1:$2 ssl crt $PKI/server.pem ca-file $PKI/client-cas.pem crl-file $PKI/crls.pem verify required ssl-min-ver TLSv1.2 alpn http/1.1 $bindopt
  http-request deny unless { ssl_c_s_dn(cn) -m str alice }
  http-request set-header X-Forwarded-For %[src]
  http-request set-header X-Client-Cert-Serial %[ssl_c_serial,hex]
  http-request set-header X-Client-Dn %[ssl_c_s_dn]
  default_backend app
backend app
  http-reuse always
  server b1 127.0.0.1:$BPORT ssl verify required ca-file $PKI/backend-ca.crt sni str(backend.test) verifyhost backend.test crt $PKI/gw-client.pem ssl-min-ver TLSv1.2
EOF
}

# start_contender NAME DIR PORT: sets SPID (the process whose tree is measured).
start_contender() {
	case $1 in
	gw)
		taskset -c "$srv_cpus" "$build/gateway/gatewayd" -c "$2/gw.conf" >"$2/gw.log" 2>&1 &
		;;
	nginx)
		taskset -c "$srv_cpus" "$NGINX" -p "$2" -c "$2/nginx.conf" -e "$2/nginx-error.log" \
			>"$2/nginx.out" 2>&1 &
		;;
	haproxy)
		taskset -c "$srv_cpus" "$HAPROXY" -f "$2/haproxy.cfg" -db >"$2/haproxy-access.log" 2>&1 &
		;;
	esac
	SPID=$!
	PIDS+=("$SPID")
	local code
	for _ in $(seq 100); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$PKI/server-ca.crt" \
			--cert "$PKI/alice.crt" --key "$PKI/alice.key" --resolve "localhost:$3:127.0.0.1" \
			"https://localhost:$3/status/200")
		[ "$code" = 200 ] && return 0
		sleep 0.1
	done
	echo "compare.sh: $1 did not come up (last status $code); see $2" >&2
	return 1
}

stop_contender() {
	kill "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
}

# proc_kib PID FIELD: VmRSS or VmHWM of PID plus its children (nginx's workers), in KiB.
proc_kib() {
	local total=0 p v
	for p in "$1" $(pgrep -P "$1"); do
		v=$(sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB$/\1/p" "/proc/$p/status" 2>/dev/null)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# proc_ticks PID: user + system CPU ticks of PID and its children (nginx's workers).
proc_ticks() {
	local total=0 p t
	for p in "$1" $(pgrep -P "$1"); do
		# Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the name.
		t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
		total=$((total + ${t:-0}))
	done
	echo "$total"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

record() { # ROUND CONTENDER METRIC VALUE
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RES"
}

# lg PORT NAME ARGS...: one gw_loadgen run pinned to the load cores; JSON in $dir/NAME.json.
lg() {
	local port=$1 name=$2
	shift 2
	taskset -c "$load_cpus" "$LG" --url "https://127.0.0.1:$port/status/200" --servername localhost \
		-H "Host: localhost" --cert "$PKI/alice.crt" --key "$PKI/alice.key" \
		--ca "$PKI/server-ca.crt" --tls13 --json "$@" >"$dir/$name.json" 2>"$dir/$name.err"
}

# jget NAME EXPR: a Python expression over the loadgen JSON `j`.
jget() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$dir/$1.json" "$2" 2>/dev/null || echo nan
}

# lg_cpu PORT NAME ARGS...: lg, also measuring the server's CPU time over the measured
# window (after the warm-up), in $dir/NAME.cpu as microseconds. CPU per request holds
# still on a shared machine, where throughput moves with whatever else runs there.
lg_cpu() {
	local port=$1 name=$2 c0 c1
	shift 2
	lg "$port" "$name" "$@" &
	local lgp=$!
	sleep "$warm"
	c0=$(proc_ticks "$SPID")
	wait "$lgp"
	c1=$(proc_ticks "$SPID")
	echo $(((c1 - c0) * TICK_US)) >"$dir/$name.cpu"
}

# Records req/s, server CPU per request and the errors of one lg_cpu run.
record_run() { # ROUND CONTENDER METRIC NAME
	local cpu
	cpu=$(cat "$dir/$4.cpu" 2>/dev/null)
	record "$1" "$2" "$3" "$(jget "$4" 'j["ok_rps"]')"
	record "$1" "$2" "$3_errors" "$(jget "$4" 'j["errors"]["total"]')"
	record "$1" "$2" "${3%_rps}_cpu_us" "$(jget "$4" "round(${cpu:-0} / max(1, j['requests']), 1)")"
}

# idle_mem ROUND CONTENDER PORT: RSS growth per idle mTLS connection.
idle_mem() {
	local before after line
	sleep 1
	before=$(proc_kib "$SPID" VmRSS)
	coproc IDLE { taskset -c "$load_cpus" "$build/bench/idle_conns" --connect "127.0.0.1:$3" \
		--servername localhost --cert "$PKI/alice.crt" --key "$PKI/alice.key" \
		--ca "$PKI/server-ca.crt" -n "$idle" --parallel 32 --hold 300 2>"$dir/idle.err"; }
	read -r -t 600 line <&"${IDLE[0]}"
	sleep 2
	after=$(proc_kib "$SPID" VmRSS)
	local ok fails
	ok=$(echo "$line" | awk '{print $2}')
	fails=$(echo "$line" | awk '{print $3}')
	# EOF on its stdin ends idle_conns (a kill would only reach the coproc's shell).
	local pid=$IDLE_PID
	eval "exec ${IDLE[1]}>&-"
	wait "$pid" 2>/dev/null
	record "$1" "$2" idle_conns_ok "${ok:-0}"
	if [ "${ok:-0}" -gt 0 ]; then
		record "$1" "$2" idle_kib_per_conn "$(python3 -c "print(round(($after - $before) / $ok, 2))")"
	fi
	[ "${fails:-0}" = 0 ] || log "  $2: $fails idle connections failed"
}

# run_contender ROUND NAME: both configurations of one contender, every scenario.
run_contender() {
	local r=$1 c=$2 port
	dir=$out/r$r-$c
	mkdir -p "$dir"
	port=$(free_port)
	"conf_$c" "$dir" "$port" default
	start_contender "$c" "$dir" "$port" || return 1
	log "round $r $c: keep-alive"
	lg_cpu "$port" ka -c "$conns" -d "$dur" --warmup "$warm"
	record_run "$r" "$c" ka_rps ka
	log "round $r $c: full handshakes (default tickets)"
	lg_cpu "$port" hs -c "$conns" -d "$dur" --warmup "$warm" --new-conn
	record_run "$r" "$c" hs_full_rps hs
	log "round $r $c: latency at $rate req/s"
	lg "$port" rate -c "$rate_conns" -d "$dur" --warmup "$warm" --rate "$rate"
	record "$r" "$c" p50_us "$(jget rate 'j["latency_us"]["p50"]')"
	record "$r" "$c" p99_us "$(jget rate 'j["latency_us"]["p99"]')"
	record "$r" "$c" rate_errors "$(jget rate 'j["errors"]["total"]')"
	record "$r" "$c" peak_rss_kib "$(proc_kib "$SPID" VmHWM)"
	log "round $r $c: $idle idle connections"
	idle_mem "$r" "$c" "$port"
	stop_contender
	rm -f "$dir"/*access.log "$dir"/gw-audit.log
	"conf_$c" "$dir" "$port" cache
	start_contender "$c" "$dir" "$port" || return 1
	log "round $r $c: full handshakes (server-side session cache)"
	lg_cpu "$port" hsc -c "$conns" -d "$dur" --warmup "$warm" --new-conn
	record_run "$r" "$c" hs_cache_rps hsc
	log "round $r $c: resumed handshakes"
	lg_cpu "$port" res -c "$conns" -d "$dur" --warmup "$warm" --new-conn --resume
	record_run "$r" "$c" resume_rps res
	record "$r" "$c" resumed_share "$(jget res 'round(j["resumed"] / max(1, j["handshakes"]), 3)')"
	stop_contender
	rm -f "$dir"/*access.log "$dir"/gw-audit.log
}

# ---- main ---------------------------------------------------------------------------

log "results in $out; server cores $srv_cpus, load generator and backend cores $load_cpus"
crypto_bounds
start_backend
IFS=, read -r -a contenders <<<"$only"
for ((r = 1; r <= rounds; r++)); do
	for c in "${contenders[@]}"; do
		run_contender "$r" "$c" || log "round $r: $c failed"
	done
done
python3 "$src/bench/compare_report.py" "$out" "$workers" "$srv_cpus" "$load_cpus" | tee "$out/report.txt"
