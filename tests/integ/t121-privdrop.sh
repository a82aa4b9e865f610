#!/usr/bin/env bash
# t121: least privilege. Started as root with user = "nobody"; group = "nogroup"; the
# process runs as nobody:nogroup after start-up (/proc/PID/status), serves, and a SIGHUP
# reload still works because its keys live in a directory nobody can read (the documented
# rule). A key nobody cannot read makes that reload fail, naming the file, and the old
# generation keeps serving. Without user and without allow_root the gateway refuses to
# run as root; group/other-readable keys are a warning, or an error when strict.
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then
	check "not root: privilege drop needs a root start (skipped)" 0 0
	finish
fi
make_pki
start_backend b1
nobody_uid=$(id -u nobody)
nogroup_gid=$(getent group nogroup | cut -d: -f3)

# Everything the gateway reads after the drop lives in keys/, owned by nobody, 0600 keys.
K=$T/keys
mkdir -p "$K"
for f in server.crt server.key client-cas.pem crls.pem backend-ca.crt gw-client.crt gw-client.key; do
	cp "$PKI/$f" "$K/$f"
done
chmod 600 "$K"/*.key
chmod 700 "$K"
chown -R nobody:nogroup "$K"
# The test directory: the ready file is written after the drop.
chmod 1777 "$T"

# gwconf FILE TOP: the standard config, trust files from keys/, TOP as top-level text.
gwconf() {
	RUN_AS=$2 EXTRA_POLICY=${3:-} write_config "$1"
	sed -i "s|\"$PKI/|\"$K/|g" "$1"
	chmod 644 "$1"
}

wait_log() {
	local i
	for ((i = 0; i < 50; i++)); do
		grep -qF -- "$1" "$T/gateway.log" && return 0
		sleep 0.1
	done
	return 1
}

# ---- refusal: root without user and without allow_root ----
gwconf "$T/root.conf" "# neither user nor allow_root"
out=$(timeout 20 "$GATEWAYD" -c "$T/root.conf" 2>&1)
check "root without user: exits non-zero" 1 "$(($? != 0))"
check_contains "root without user: says why" "refusing to keep running as root" "$out"

# ---- -t: unknown user, key permissions ----
gwconf "$T/nouser.conf" 'user = "no-such-user-t121";'
out=$("$GATEWAYD" -t -c "$T/nouser.conf" 2>&1)
check "unknown user: -t fails" 1 "$(($? != 0))"
line=$(grep -n -m1 'no-such-user' "$T/nouser.conf" | cut -d: -f1)
check_contains "unknown user: file:line" "$T/nouser.conf:$line: user 'no-such-user-t121' does not exist" "$out"
chmod 644 "$K/server.key"
gwconf "$T/loose.conf" 'user = "nobody"; group = "nogroup";'
out=$("$GATEWAYD" -t -c "$T/loose.conf" 2>&1)
check "0644 key: -t still passes" 0 $?
check_contains "0644 key: warned" "private key $K/server.key is accessible by group or others (mode 0644)" "$out"
gwconf "$T/strict.conf" 'user = "nobody"; group = "nogroup"; strict_key_permissions = true;'
out=$("$GATEWAYD" -t -c "$T/strict.conf" 2>&1)
check "0644 key with strict_key_permissions: -t fails" 1 "$(($? != 0))"
chmod 600 "$K/server.key"

# ---- the drop ----
gwconf "$T/gw.conf" 'user = "nobody"; group = "nogroup";'
start_gateway "$T/gw.conf"
uid_line=$(grep '^Uid:' "/proc/$GW_PID/status" | tr -s '\t ' ' ')
gid_line=$(grep '^Gid:' "/proc/$GW_PID/status" | tr -s '\t ' ' ')
groups_line=$(grep '^Groups:' "/proc/$GW_PID/status" | tr -s '\t ' ' ' | sed 's/ $//')
check "Uid: real, effective, saved, fs are nobody" "Uid: $nobody_uid $nobody_uid $nobody_uid $nobody_uid" "$uid_line"
check "Gid: all nogroup" "Gid: $nogroup_gid $nogroup_gid $nogroup_gid $nogroup_gid" "$gid_line"
check "supplementary groups: nogroup only" "Groups: $nogroup_gid" "$groups_line"
check "no capabilities left" "CapEff: 0000000000000000" "$(grep '^CapEff:' "/proc/$GW_PID/status" | tr -s '\t ' ' ')"
check "every thread dropped" 0 "$(grep -h '^Uid:' /proc/"$GW_PID"/task/*/status | grep -vc "$nobody_uid")"
check "serves as nobody" 200 "$(gw_status alice /public/a)"
check_contains "drop logged" "privileges: running as nobody" "$(cat "$T/gateway.log")"

# ---- reload as nobody: keys readable by the run-as user ----
gwconf "$T/gw.conf.new" 'user = "nobody"; group = "nogroup";' ', { cn = "bob"; allow = [ "/api" ]; }'
mv "$T/gw.conf.new" "$T/gw.conf"
kill -HUP "$GW_PID"
wait_log "generation 2 in service"
check "reload as nobody succeeds" 0 $?
check "new rule applies after the reload" 200 "$(gw_status bob /api/a)"

# A key only root can read: the reload fails with the file named; generation 2 serves on.
chown root:root "$K/server.key"
kill -HUP "$GW_PID"
wait_log "reload failed: keeping generation 2"
check "unreadable key: reload refused" 0 $?
check_contains "unreadable key: file named" "$K/server.key" "$(grep 'reload:' "$T/gateway.log" | tail -n 3)"
check "unreadable key: old generation serves" 200 "$(gw_status bob /api/a)"
chown nobody:nogroup "$K/server.key"

stop_pid "$GW_PID"
check "still nobody-owned audit log readable" 1 "$(($(grep -c '"status":200' "$T/audit.log") > 0))"
finish
