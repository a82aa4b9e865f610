#!/usr/bin/env bash
# t005: the module layering holds in the real tree (scripts/check-deps.sh passes), and the
# checker really catches each kind of violation: every case copies one module dir to a
# scratch root, plants one bad #include at line 2 and expects exit 1 naming file:2.
source "$(dirname "$0")/lib.sh"
CHECKER=$GW_SRC/scripts/check-deps.sh

out=$(bash "$CHECKER" 2>&1)
check "real tree passes check-deps" 0 $?
check_contains "real tree: ok line" "check-deps: ok" "$out"

# plant FILE INCLUDE: fresh scratch root holding FILE's module dir, INCLUDE at line 2.
plant() {
	local dir=${1%/*}
	rm -rf "$T/root"
	mkdir -p "$(dirname "$T/root/$dir")"
	cp -r "$GW_SRC/$dir" "$T/root/$dir"
	awk -v inc="$2" '{ print } NR == 1 { print inc }' "$GW_SRC/$1" >"$T/root/$1"
	# A case whose plant silently missed would pass vacuously.
	[ "$(sed -n 2p "$T/root/$1")" == "$2" ] || fail "could not plant $2 in $1"
}

# Bad: FILE|INCLUDE. Each must fail, naming FILE:2.
while IFS='|' read -r file inc; do
	plant "$file" "$inc"
	out=$(bash "$CHECKER" "$T/root" 2>&1)
	check "caught in $file: $inc (exit)" 1 $?
	check_contains "caught in $file: $inc (file:line)" "$file:2: " "$out"
done <<'EOF'
policy/path.c|#include <event2/event.h>
policy/trie.c|#include <pthread.h>
policy/rules.c|#include "conf.h"
policy/route.c|  #  include <sys/socket.h>
authn/cert_id.c|#include <sys/socket.h>
authn/cert_id.c|#include "gw.h"
authn/cert_id.c|#include <event2/bufferevent_ssl.h>
pki/store.c|#include "authn.h"
pki/store.c|#include "policy.h"
pki/leaf.c|#include "conf.h"
pki/tickets.c|#include "gw.h"
conf/load.c|#include "gw.h"
conf/build.c|#include <event2/buffer.h>
gateway/proxy.c|#include "policy_int.h"
gateway/main.c|#include "../conf/conf.h"
conf/walk.c|#include "pki_int.h"
EOF

# Allowed: FILE|INCLUDE. Layering permits these, so the checker must stay quiet.
while IFS='|' read -r file inc; do
	plant "$file" "$inc"
	out=$(bash "$CHECKER" "$T/root" 2>&1)
	check "allowed in $file: $inc" "0 check-deps: ok" "$? $out"
done <<'EOF'
policy/path.c|#include "authn.h"
policy/path.c|#include "policy_int.h"
tests/unit/test_policy_path.c|#include "policy_int.h"
authn/cert_id.c|#include "pki.h"
pki/store.c|#include <pthread.h>
pki/store.c|#include "pki_int.h"
conf/load.c|#include "policy.h"
gateway/proxy.c|#include <event2/event.h>
EOF
finish
