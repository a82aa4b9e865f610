#!/usr/bin/env bash
# t086: the admin listener shows the upstreams: /readyz needs a usable server in every
# cluster, /upstreams has each server's health, /metrics has per-server series.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
dead=$(free_port)
SERVERS="{ address = \"127.0.0.1:$BPORT_b1\"; name = \"backend.test\"; }, { address = \"127.0.0.1:$dead\"; name = \"backend.test\"; }"
EXTRA_CLUSTER='health = { path = "/__stats"; interval = 0.2; timeout = 1; rise = 1; fall = 1; };'
EXTRA_TOP='admin = { address = "127.0.0.1:0"; };'
write_config "$T/gw.conf"
start_gateway "$T/gw.conf"
ADMIN=$(sed -n 's/^admin //p' "$T/gw.ready")
check_contains "admin address in the ready file" "127.0.0.1:" "$ADMIN"

# Bounded wait for the first health verdicts.
for _ in $(seq 1 50); do
	curl -s "http://$ADMIN/metrics" | grep -q "gateway_upstream_up{cluster=\"app\",server=\"127.0.0.1:$dead\"} 0" && break
	sleep 0.1
done
metrics=$(curl -s "http://$ADMIN/metrics")
check_contains "healthy server is up in /metrics" "gateway_upstream_up{cluster=\"app\",server=\"127.0.0.1:$BPORT_b1\"} 1" "$metrics"
check_contains "dead server is down in /metrics" "gateway_upstream_up{cluster=\"app\",server=\"127.0.0.1:$dead\"} 0" "$metrics"
check_contains "client CA bundle expiry exported" "gateway_cert_file_expiry_seconds{file=\"$PKI/client-cas.pem\"}" "$metrics"
check_contains "upstream client certificate expiry exported" "gateway_cert_file_expiry_seconds{file=\"$PKI/gw-client.crt\"}" "$metrics"
check_contains "CRL freshness exported" "gateway_crl_next_update_seconds{file=\"$PKI/crls.pem\"}" "$metrics"
ups=$(curl -s "http://$ADMIN/upstreams")
check "/upstreams is JSON" 0 "$(python3 -c 'import json,sys; json.loads(sys.argv[1])' "$ups" >/dev/null 2>&1; echo $?)"
check_contains "/upstreams lists the dead server" "127.0.0.1:$dead" "$ups"
check "ready with one healthy server" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/readyz")"
check "traffic still served" 200 "$(gw_status alice /public/x)"

stop_pid "$BPID_b1"
for _ in $(seq 1 50); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/readyz")" = 503 ] && break
	sleep 0.1
done
check "not ready once no server is usable" 503 "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/readyz")"
check_contains "readyz says why" "cluster app has no healthy server" "$(curl -s "http://$ADMIN/readyz")"
check "no healthy upstream: 503 at once" 503 "$(gw_status alice /public/x)"
finish
