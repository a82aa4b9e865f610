#!/usr/bin/env bash
# t085: the upstream keys of a cluster (balance, retries, retry_deadline, health, outlier,
# pool.max_connections and pool.queue) are accepted when valid, and each invalid value is
# reported by `gatewayd -t` at its line with what is wrong.
source "$(dirname "$0")/lib.sh"
make_pki
BPORT_b1=9 # never contacted: -t only
EXTRA_CLUSTER='balance = "least_outstanding"; retries = 3; retry_deadline = 2.5;
    pool = { max_idle = 8; idle_timeout = 30; max_connections = 100; queue = 10; };
    health = { path = "/healthz"; method = "HEAD"; expect_status = [200, 204];
               expect_body = "ok"; interval = 2; timeout = 1; rise = 2; fall = 3; jitter = 0.2; };
    outlier = { consecutive_failures = 5; base_ejection = 10; max_ejection = 300;
                max_ejected_percent = 50; };'
write_config "$T/good.conf"
OUT=$("$GATEWAYD" -t -c "$T/good.conf" 2>&1)
check "every upstream key: -t exits 0" 0 "$?"
check_contains "every upstream key: configuration OK" "configuration OK" "$OUT"

# bad NAME TEXT DIAGNOSTIC: the cluster with TEXT added must fail -t with DIAGNOSTIC at
# TEXT's line ("LINE" in DIAGNOSTIC stands for it).
bad() {
	local f=$T/$1.conf line out
	EXTRA_CLUSTER=$2 write_config "$f"
	line=$(grep -nF -m1 -- "$2" "$f" | cut -d: -f1)
	out=$("$GATEWAYD" -t -c "$f" 2>&1)
	check "$1: -t fails" 1 "$(($? != 0))"
	check_contains "$1: diagnostic" "$f:${3//LINE/$line}" "$out"
}
bad balance 'balance = "random";' \
	"LINE: 'clusters[0].balance' must be \"round_robin\" or \"least_outstanding\", not 'random'"
bad both-retries 'retries = 1; max_attempts = 2;' \
	"LINE: set either 'retries' or 'max_attempts', not both"
bad retries-range 'retries = 16;' "LINE: 'clusters[0].retries' must be between 0 and 15, not 16"
bad status-order 'health = { expect_status = [500, 200]; };' \
	"LINE: 'clusters[0].health.expect_status' must be [low, high] with 100 <= low <= high <= 599"
bad status-shape 'health = { expect_status = [200]; };' \
	"LINE: 'clusters[0].health.expect_status' must be an array of two integers [low, high], not an array"
bad jitter 'health = { jitter = 1.5; };' \
	"LINE: 'clusters[0].health.jitter' must be between 0 and 1, not 1.5"
bad path 'health = { path = "healthz"; };' "LINE: 'clusters[0].health.path' must start with '/'"
bad method 'health = { method = "POST"; };' \
	"LINE: 'clusters[0].health.method' must be \"GET\" or \"HEAD\", not 'POST'"
bad rise 'health = { rise = 0; };' "LINE: 'clusters[0].health.rise' must be between 1 and 100, not 0"
bad ejection 'outlier = { base_ejection = 60; max_ejection = 30; };' \
	"LINE: 'outlier.max_ejection' must not be shorter than 'base_ejection'"
bad percent 'outlier = { max_ejected_percent = 101; };' \
	"LINE: 'clusters[0].outlier.max_ejected_percent' must be between 0 and 100, not 101"
bad unknown 'health = { intervall = 2; };' "LINE: unknown key 'intervall' in 'clusters[0].health'"
finish
