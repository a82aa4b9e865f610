#!/usr/bin/env bash
# t065: the admin listener: /healthz, /readyz, 404 elsewhere, GET only; /metrics parses
# with a strict Prometheus text-format (0.0.4) parser and its request and handshake
# counters equal the audit log's counts; reloads are counted; a non-loopback admin
# address is refused unless allow_remote is set.
source "$(dirname "$0")/lib.sh"
make_pki
start_backend b1
ROUTES='{ prefix = "/public"; cluster = "app"; }, { prefix = "/api"; cluster = "app"; }'
write_config "$T/gw.conf"
sed -i "s|^audit = .*|&\nadmin = { address = \"127.0.0.1:0\"; };|" "$T/gw.conf"
start_gateway "$T/gw.conf"
ADMIN=$(sed -n 's/^admin //p' "$T/gw.ready")
check_contains "ready file names the admin listener" "127.0.0.1:" "$ADMIN"

admin() {
	curl -sS --max-time 5 -o "$T/admin.out" -w '%{http_code}' "$@"
}
check "/healthz" 200 "$(admin "http://$ADMIN/healthz")"
check "/readyz" 200 "$(admin "http://$ADMIN/readyz")"
check "unknown path" 404 "$(admin "http://$ADMIN/nope")"
check_not_contains "POST refused" 200 "$(admin -X POST -d x "http://$ADMIN/metrics")"

# Mixed traffic: 200, 403, 404, refused handshakes of two kinds.
for i in $(seq 1 30); do gw_status alice "/public/$i" >/dev/null; done
for i in $(seq 1 20); do gw_status alice "/api/admin/$i" >/dev/null; done
for i in $(seq 1 10); do gw_status bob "/nothing/$i" >/dev/null; done
for i in $(seq 1 5); do gw_status - /public/x >/dev/null; done
for i in $(seq 1 3); do gw_status untrusted /public/x >/dev/null; done
sleep 0.3 # the writer batches every millisecond; give it time
check "/metrics" 200 "$(admin -D "$T/admin.head" "http://$ADMIN/metrics")"
check_contains "text format content type" "text/plain; version=0.0.4" "$(cat "$T/admin.head")"
cp "$T/admin.out" "$T/metrics.txt"

# A reload that works and one that fails are counted.
kill -HUP "$GW_PID"
sleep 0.5
echo "this is not libconfig" >>"$T/gw.conf"
kill -HUP "$GW_PID"
sleep 0.5
admin "http://$ADMIN/metrics" >/dev/null
reloads=$(grep '^gateway_reloads_total' "$T/admin.out" | tr '\n' ' ')
check "reloads counted" 'gateway_reloads_total{result="ok"} 1 gateway_reloads_total{result="failed"} 1 ' "$reloads"
stop_pid "$GW_PID"

result=$(python3 - "$T/metrics.txt" "$T/audit.log" <<'EOF'
import collections, json, math, re, sys

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
LNAME = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

def fail(msg):
    print("parse error:", msg)
    sys.exit(0)

def parse_labels(s, pos, lineno):
    """Parses {a="x",b="y"} from s[pos] == '{'; returns (dict, position after '}')."""
    labels = {}
    pos += 1
    while True:
        if s[pos] == '}':
            return labels, pos + 1
        m = LNAME.match(s, pos)
        if not m:
            fail(f"line {lineno}: bad label name at {pos}")
        name, pos = m.group(0), m.end()
        if s[pos:pos + 2] != '="':
            fail(f"line {lineno}: expected =\" after {name}")
        pos += 2
        val = []
        while s[pos] != '"':
            if s[pos] == '\\':
                esc = s[pos + 1]
                if esc not in '\\"n':
                    fail(f"line {lineno}: bad escape \\{esc}")
                val.append('\n' if esc == 'n' else esc)
                pos += 2
            elif s[pos] == '\n':
                fail(f"line {lineno}: newline in label value")
            else:
                val.append(s[pos])
                pos += 1
        pos += 1
        if name in labels:
            fail(f"line {lineno}: duplicate label {name}")
        labels[name] = ''.join(val)
        if s[pos] == ',':
            pos += 1
        elif s[pos] != '}':
            fail(f"line {lineno}: expected , or }} after a label")

def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return name

def parse(text):
    if not text.endswith("\n"):
        fail("no final newline")
    types, helps, samples, seen_family = {}, {}, {}, set()
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (\S+) (.*)", line)
            if not m:
                continue
            kind, name, rest = m.groups()
            if not NAME.fullmatch(name):
                fail(f"line {lineno}: bad metric name {name}")
            if kind == "TYPE":
                if rest not in TYPES or name in types or name in seen_family:
                    fail(f"line {lineno}: bad or late TYPE for {name}")
                types[name] = rest
            elif name in helps:
                fail(f"line {lineno}: second HELP for {name}")
            else:
                helps[name] = rest
            continue
        m = NAME.match(line)
        if not m:
            fail(f"line {lineno}: no metric name: {line!r}")
        name, pos = m.group(0), m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = parse_labels(line + "\n", pos, lineno)
        rest = line[pos:].split(" ")
        if rest[0] != "" or len(rest) not in (2, 3):
            fail(f"line {lineno}: expected ' value [timestamp]': {line!r}")
        try:
            value = float(rest[1])
        except ValueError:
            fail(f"line {lineno}: bad value {rest[1]!r}")
        fam = family_of(name, types)
        seen_family.add(fam)
        if fam not in types:
            fail(f"line {lineno}: sample of {fam} without a TYPE")
        if types[fam] == "counter" and (value < 0 or math.isnan(value)):
            fail(f"line {lineno}: negative counter")
        key = (name, tuple(sorted(labels.items())))
        if key in samples:
            fail(f"line {lineno}: duplicate series {key}")
        samples[key] = value
    return types, samples

def check_histogram(types, samples):
    for fam, t in types.items():
        if t != "histogram":
            continue
        buckets = sorted((float(dict(l)["le"]), v) for (n, l), v in samples.items() if n == fam + "_bucket")
        if not buckets or buckets[-1][0] != math.inf:
            fail(f"{fam}: no +Inf bucket")
        if any(lo[1] > hi[1] for lo, hi in zip(buckets, buckets[1:])):
            fail(f"{fam}: buckets not cumulative")
        if samples.get((fam + "_count", ())) != buckets[-1][1]:
            fail(f"{fam}: +Inf bucket != _count")

types, samples = parse(open(sys.argv[1]).read())
check_histogram(types, samples)
want_req, want_hs, n_req = collections.Counter(), collections.Counter(), 0
for line in open(sys.argv[2]):
    o = json.loads(line)
    if o["type"] == "request":
        n_req += 1
        want_req[(o["route"] or "(none)", str(o["status"]), o["decision"])] += 1
    elif o["type"] == "handshake":
        want_hs[o["reason"]] += 1
got_req, got_hs = collections.Counter(), collections.Counter()
for (name, labels), v in samples.items():
    l = dict(labels)
    if name == "gateway_requests_total":
        got_req[(l["route"], l["status"], l["decision"])] += int(v)
    elif name == "gateway_handshake_failures_total":
        got_hs[l["reason"]] += int(v)
problems = []
if got_req != want_req:
    problems.append(f"requests: metrics {dict(got_req)} log {dict(want_req)}")
if got_hs != want_hs:
    problems.append(f"handshakes: metrics {dict(got_hs)} log {dict(want_hs)}")
if samples.get(("gateway_request_duration_seconds_count", ())) != n_req:
    problems.append("histogram count != request records")
if samples.get(("gateway_audit_records_total", ())) != n_req + sum(want_hs.values()):
    problems.append("gateway_audit_records_total != records")
for name in ("gateway_audit_queue_depth", "gateway_audit_dropped_total", "gateway_connections_open"):
    if (name, ()) not in samples:
        problems.append(f"{name} missing")
exp = [v for (n, l), v in samples.items() if n == "gateway_cert_expiry_seconds"]
if len(exp) != 1 or exp[0] <= 0:
    problems.append("gateway_cert_expiry_seconds")
print("; ".join(problems) if problems else f"ok {n_req} {sum(want_hs.values())}")
EOF
)
check "metrics parse and match the audit log" "ok 60 8" "$result"

# A non-loopback admin address needs allow_remote.
write_config "$T/remote.conf"
sed -i "s|^audit = .*|&\nadmin = { address = \"0.0.0.0:9901\"; };|" "$T/remote.conf"
out=$("$GATEWAYD" -t -c "$T/remote.conf" 2>&1)
check "non-loopback admin refused" 1 $?
check_contains "says why" "not a loopback address" "$out"
sed -i 's|0.0.0.0:9901"; };|0.0.0.0:9901"; allow_remote = true; };|' "$T/remote.conf"
"$GATEWAYD" -t -c "$T/remote.conf" >/dev/null 2>&1
check "allowed with allow_remote" 0 $?
finish
