#!/usr/bin/env python3
"""compare_report.py OUT WORKERS SERVER_CPUS LOAD_CPUS: the tables of bench/compare.sh.

Reads OUT/results.tsv (round, contender, metric, value), OUT/speed.txt (openssl speed) and
OUT/hs_bench.txt, prints medians per contender with the ratio of gatewayd to the best
peer and whether each target of issue 7 is met, then the crypto bound. Also writes
OUT/summary.json.
"""
import json
import re
import statistics
import sys
from collections import defaultdict

out, workers, srv_cpus, load_cpus = sys.argv[1:5]
NAMES = {"gw": "gatewayd", "nginx": "nginx", "haproxy": "haproxy"}
# metric, label, higher is better
METRICS = [
    ("ka_rps", "keep-alive req/s", True),
    ("ka_cpu_us", "  server CPU us per request", False),
    ("hs_full_rps", "full handshakes/s, default tickets", True),
    ("hs_full_cpu_us", "  server CPU us per handshake", False),
    ("hs_cache_rps", "full handshakes/s, session cache", True),
    ("hs_cache_cpu_us", "  server CPU us per handshake", False),
    ("resume_rps", "resumed handshakes/s", True),
    ("resume_cpu_us", "  server CPU us per handshake", False),
    ("resumed_share", "  share actually resumed", True),
    ("p50_us", "p50 latency us at fixed rate", False),
    ("p99_us", "p99 latency us at fixed rate", False),
    ("peak_rss_kib", "peak RSS KiB", False),
    ("idle_kib_per_conn", "KiB per idle mTLS connection", False),
]

vals = defaultdict(list)
with open(f"{out}/results.tsv") as f:
    for line in f:
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 4:
            continue
        _, c, m, v = parts
        try:
            x = float(v)
        except ValueError:
            continue
        if x == x:  # not NaN
            vals[(c, m)].append(x)


def med(c, m):
    v = vals.get((c, m))
    return statistics.median(v) if v else None


contenders = [c for c in ("gw", "nginx", "haproxy") if any(k[0] == c for k in vals)]
peers = [c for c in contenders if c != "gw"]


def fmt(x):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.2f}"


def ratio(m, higher):
    g = med("gw", m)
    pv = [med(p, m) for p in peers if med(p, m) is not None]
    if g is None or not pv or g == 0:
        return None
    best = max(pv) if higher else min(pv)
    return g / best if best else None


rounds = max((len(v) for v in vals.values()), default=0)
print(f"\n== gatewayd vs nginx vs HAProxy: medians of {rounds} round(s); "
      f"{workers} worker(s) on core(s) {srv_cpus}, load generator + backend on {load_cpus}")
hdr = f"{'metric':<36}" + "".join(f"{NAMES[c]:>12}" for c in contenders) + f"{'gw/best peer':>14}"
print(hdr)
print("-" * len(hdr))
summary = {"medians": {}, "ratios": {}, "targets": {}}
for m, label, higher in METRICS:
    row = f"{label:<36}" + "".join(f"{fmt(med(c, m)):>12}" for c in contenders)
    r = ratio(m, higher) if m != "resumed_share" else None
    row += f"{(f'{r:.2f}x' if r else '-'):>14}"
    print(row)
    summary["medians"][m] = {c: med(c, m) for c in contenders}
    summary["ratios"][m] = r

errs = []
for c in contenders:
    for m in ("ka_rps_errors", "hs_full_rps_errors", "hs_cache_rps_errors", "resume_rps_errors",
              "rate_errors"):
        e = vals.get((c, m))
        if e and max(e) > 0:
            errs.append(f"{NAMES[c]} {m.replace('_errors', '')}: up to {max(e):.0f} errors")
if errs:
    print("errors seen: " + "; ".join(errs))

# Targets of issue 7.
print("\n== targets (issue 7)")


def target(name, ok, text):
    summary["targets"][name] = ok
    mark = "n/a " if ok is None else ("MET " if ok else "MISS")
    print(f"  [{mark}] {text}")


# Throughput targets, judged on measured req/s and on CPU per request (the inverse of
# req/s per core, which a shared machine disturbs far less).
r = ratio("ka_rps", True)
rc = ratio("ka_cpu_us", False)
rc = 1 / rc if rc else None
target("keepalive", None if r is None else r >= 1.3,
       f"keep-alive req/s >= 1.3x the better peer: {fmt(r)}x measured, "
       f"{fmt(rc)}x per CPU second")
g_best = max([x for x in (med("gw", "hs_full_rps"), med("gw", "hs_cache_rps")) if x] or [0])
p_cache = max([med(p, "hs_cache_rps") or 0 for p in peers] or [0])
r = g_best / p_cache if p_cache else None
g_cpu = min([x for x in (med("gw", "hs_full_cpu_us"), med("gw", "hs_cache_cpu_us")) if x] or [0])
p_cpu = min([med(p, "hs_cache_cpu_us") or 0 for p in peers if med(p, "hs_cache_cpu_us")] or [0])
rc = p_cpu / g_cpu if g_cpu and p_cpu else None
target("handshake", None if r is None else r >= 1.2,
       f"full handshakes/s (our best config) >= 1.2x the better peer with its session cache: "
       f"{fmt(r)}x measured, {fmt(rc)}x per CPU second")
r = ratio("p99_us", False)
target("p99", None if r is None else r <= 1.0, f"p99 latency no worse than the better peer: "
       f"{fmt(r)}x")
g, n = med("gw", "idle_kib_per_conn"), med("nginx", "idle_kib_per_conn")
r = g / n if g is not None and n else None
target("idle_memory", None if r is None else r <= 0.5,
       f"memory per idle mTLS connection <= 0.5x nginx's: {fmt(r)}x")

# The physical bound.
print("\n== crypto bound (openssl speed on the server core)")
try:
    speed = open(f"{out}/speed.txt").read()
    sign, verify = map(float, re.search(r"ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)",
                                        speed).groups())
    x25519 = float(re.search(r"ecdh \(X25519\)\s+\S+\s+([\d.]+)", speed).group(1))
    t_sign, t_verify, t_x = 1e6 / sign, 1e6 / verify, 1e6 / x25519
    # Server side of a full TLS 1.3 mTLS handshake: sign our CertificateVerify, verify the
    # client's CertificateVerify, its certificate's signature and the CRL's signature, one
    # X25519 key generation and one shared-secret derivation.
    t_server = t_sign + 3 * t_verify + 2 * t_x
    print(f"  ECDSA P-256 sign {sign:,.0f}/s ({t_sign:.0f} us), verify {verify:,.0f}/s "
          f"({t_verify:.0f} us); X25519 {x25519:,.0f} op/s ({t_x:.0f} us)")
    print(f"  server side of one full mTLS handshake = 1 sign + 3 verify + 2 X25519 = "
          f"{t_server:.0f} us -> ceiling {1e6 / t_server:,.0f} handshakes/s per core "
          f"(public-key operations only)")
    summary["crypto_ceiling_per_core"] = 1e6 / t_server
    for c in contenders:
        best = max([x for x in (med(c, "hs_full_rps"), med(c, "hs_cache_rps")) if x] or [0])
        if best:
            print(f"  {NAMES[c]:<9} best full-handshake rate {best:,.0f}/s = "
                  f"{100 * best * t_server / 1e6:.0f}% of that ceiling")
except (OSError, AttributeError, ValueError):
    print("  (openssl speed output not found or not understood)")
try:
    print("\n== OpenSSL alone: TLS 1.3 mTLS handshakes over a BIO pair, one thread (hs_bench)")
    print("  " + open(f"{out}/hs_bench.txt").read().rstrip().replace("\n", "\n  "))
except OSError:
    pass
with open(f"{out}/summary.json", "w") as f:
    json.dump(summary, f, indent=1)
