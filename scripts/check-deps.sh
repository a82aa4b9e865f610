#!/usr/bin/env bash
# check-deps.sh [ROOT]: enforces the module layering (architecture 3.4) on #include lines.
# policy/ and authn/ stay pure (no libevent, sockets, threads, gateway or config); pki/
# sees no other project header; conf/ sees no gateway or libevent; nobody reaches another
# module's private *_int.h or climbs out with "../". White-box tests (tests/, bench/,
# fuzz/) may include a module's *_int.h, as the architecture allows for testing statics.
# Prints file:line per violation and exits 1; ROOT defaults to the repo (tests point it
# at a copy with a planted violation).
set -eu
cd "${1:-$(dirname "$0")/..}"
ints=$(find pki authn policy conf gateway -maxdepth 1 -name '*_int.h' -printf '%f=%h ' 2>/dev/null || true)
find . -path './build*' -prune -o -type f \( -name '*.c' -o -name '*.h' \) -print0 |
	xargs -0 -r grep -nE '^[[:space:]]*#[[:space:]]*include' /dev/null | awk -v ints="$ints" '
	BEGIN { n = split(ints, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, "="); home[kv[1]] = kv[2] } }
	{
		split($0, f, ":"); file = substr(f[1], 3); mod = file; sub(/\/.*/, "", mod)
		h = $0; sub(/^[^#]*#[[:space:]]*include[[:space:]]*/, "", h); sub(/[[:space:]].*/, "", h)
		base = h; gsub(/[<>"]/, "", base); sub(/.*\//, "", base); owner = base; sub(/_int\.h$/, "", owner)
		why = ""
		if ((mod == "policy" || mod == "authn") && h ~ /^(<event2\/|<sys\/socket\.h>|<pthread\.h>|"gw\.h"|"conf\.h")/) why = "pure module"
		if (mod == "pki" && h ~ /^"(authn|policy|conf|gw)\.h"/) why = "pki includes a project header"
		if (mod == "conf" && h ~ /^(<event2\/|"gw\.h")/) why = "conf includes gateway/libevent"
		if (base ~ /_int\.h$/) {
			where = (base in home) ? home[base] : owner
			if (where != mod && mod !~ /^(tests|bench|fuzz)$/) why = "private header of module " where
		}
		if (index(h, "../")) why = "\"../\" in include"
		if (why != "") { printf "%s:%s: %s: #include %s\n", file, f[2], why, h; bad++ }
	}
	END { if (bad) { printf "check-deps: %d violation(s)\n", bad; exit 1 }; print "check-deps: ok" }'
