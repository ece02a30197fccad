#!/usr/bin/env python3
"""The results of scripts/bench-http from what it left in OUT (runs.tsv, wrk/, and
propagation.json): results.json, results.csv and the chart bench-http.svg in OUT, and the
Markdown table of BENCHMARKS.md on stdout.

    http_report.py OUT THREADS CONNECTIONS DURATION ROUNDS LOAD_BEFORE LOAD_AFTER CLK_TCK \
        ALT_DURATION PHASE_MS
"""
import json, math, os, re, statistics, sys, time

out, threads, conns, duration, rounds, load_before, load_after, clk_tck, alt_duration, phase_ms = sys.argv[1:11]
tick_us = 1e6 / int(clk_tck)
threads, conns, duration, rounds = int(threads), int(conns), int(duration), int(rounds)

SETUPS = [
    ("health", "/health (no auth)"),
    ("me-open", "/me body, no auth (control)"),
    ("me-memory", "/me, MemoryStore"),
    ("me-memory-nocache", "/me, MemoryStore, token cache off"),
    ("me-redis", "/me, RedisStore"),
    ("me-redis-nocache", "/me, RedisStore, token cache off"),
    ("baseline", "/me, verify + Redis EXISTS"),
    ("me-oidc-rs256", "/me, RS256 from an identity provider"),
    ("me-oidc-rs256-nocache", "/me, RS256 from an identity provider, token cache off"),
]

def seconds(v, unit):
    return float(v) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

def parse_wrk(path):
    text = open(path).read()
    r = {}
    r["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    r["requests"] = int(re.search(r"(\d+) requests in", text).group(1))
    for p in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\b" % p, text, re.M)
        r["p" + p + "_ms"] = seconds(m.group(1), m.group(2)) * 1000
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = sum(map(int, m.groups())) if m else 0
    return r

def cmdstats(path):
    stats = {}
    for line in open(path):
        m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if m:
            stats[m.group(1)] = int(m.group(2))
    return stats

def cmd_delta(prefix):
    before, after = cmdstats(prefix + ".before"), cmdstats(prefix + ".after")
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}

runs = [line.rstrip("\n").split("\t") for line in open(os.path.join(out, "runs.tsv"))]
idle = next(r for r in runs if r[0] == "idle")
idle_commands = int(idle[4]) - int(idle[3])

def median_ci(xs):
    """A distribution-free 95% confidence interval for the median of xs: the order
    statistics x(k) and x(n+1-k), k the largest with P(Binomial(n, 1/2) < k) <= 0.025
    (the whole range when there are too few values for one)."""
    xs, n = sorted(xs), len(xs)
    k, tail = 0, 0.0
    while k < n // 2:
        p = math.comb(n, k) / 2**n
        if tail + p > 0.025:
            break
        tail += p
        k += 1
    k = max(k, 1)
    return xs[k - 1], xs[n - k]


def rounds_of(name):
    per_round = []
    for r in (r for r in runs if r[0] == name):
        w = parse_wrk(os.path.join(out, "wrk", "%s.%s.txt" % (name, r[1])))
        if w["non_2xx"]:
            sys.exit("%s round %s: %d non-2xx responses" % (name, r[1], w["non_2xx"]))
        w["round"] = int(r[1])
        w["redis_commands"] = int(r[4]) - int(r[3])
        w["redis_commands_by_name"] = cmd_delta(os.path.join(out, "wrk", "%s.%s" % (name, r[1])))
        w["redis_commands_per_request"] = max(0, w["redis_commands"] - idle_commands) / w["requests"]
        w["server_cpu_us_per_request"] = (int(r[6]) - int(r[5])) * tick_us / w["requests"]
        w["redis_cpu_us_per_request"] = (int(r[8]) - int(r[7])) * tick_us / w["requests"]
        wrk_cpu = sum(map(float, open(os.path.join(out, "wrk", "%s.%s.wrk-cpu" % (name, r[1]))).read().split()))
        w["wrk_cpu_us_per_request"] = wrk_cpu * 1e6 / w["requests"]
        per_round.append(w)
    return per_round

# CPU time per request (server + Redis).
cpu = lambda x: x["server_cpu_us_per_request"] + x["redis_cpu_us_per_request"]

results = []
for name, label in SETUPS:
    per_round = rounds_of(name)
    med = lambda k: statistics.median(w[k] for w in per_round)
    result = {
        "setup": name, "label": label,
        "rps": round(med("rps"), 1),
        "p50_ms": round(med("p50_ms"), 3), "p99_ms": round(med("p99_ms"), 3),
        "redis_commands_per_request": round(med("redis_commands_per_request"), 4),
        "server_cpu_us_per_request": round(med("server_cpu_us_per_request"), 2),
        "redis_cpu_us_per_request": round(med("redis_cpu_us_per_request"), 2),
        "wrk_cpu_us_per_request": round(med("wrk_cpu_us_per_request"), 2),
        "rounds": per_round,
    }
    # The ratio to /health within each pair: the setup's run and the /health run beside
    # it on the same server process (the memory server's for me-memory, whose /health
    # runs are the health row); the median over the rounds is the figure.
    if name == "health":
        pairs = [(w, w) for w in per_round]
    else:
        health_rounds = {w["round"]: w for w in rounds_of("health" if name == "me-memory" else "health@" + name)}
        pairs = [(w, health_rounds[w["round"]]) for w in per_round]
    ratios = [w["rps"] / h["rps"] for w, h in pairs]
    cpu_ratios = [cpu(h) / cpu(w) for w, h in pairs]
    result["health_rps_per_round"] = [round(h["rps"], 1) for _, h in pairs]
    result["ratio_to_health"] = round(statistics.median(ratios), 3)
    result["ratio_to_health_per_round"] = [round(x, 3) for x in ratios]
    lo, hi = median_ci(ratios)
    result["ratio_to_health_ci95"] = [round(lo, 3), round(hi, 3)]
    # The same ratio from CPU time per request: less sensitive to what else the machine
    # runs than requests/s are.
    result["cpu_ratio_to_health"] = round(statistics.median(cpu_ratios), 3)
    results.append(result)

# The ratios from alternating phases (scripts/alternate.lua): `phase N A|B COUNT` lines;
# the first and the last phase are cut short by the run, the rest pair up as (2k, 2k+1).
def alternating(name):
    counts = {}
    for line in open(os.path.join(out, "alternate", name + ".txt")):
        f = line.split()
        if len(f) == 4 and f[0] == "phase":
            counts[int(f[1])] = (f[2], int(f[3]))
    if len(counts) < 4:
        sys.exit("alternate %s: %d phases" % (name, len(counts)))
    first, last = min(counts), max(counts)
    ratios, sums = [], {"A": 0, "B": 0}
    for p in range(first + 1 + (first + 1) % 2, last - 1, 2):
        if p in counts and p + 1 in counts:
            by_kind = dict((counts[p], counts[p + 1]))
            a, b = by_kind["A"], by_kind["B"]
            if a == 0:
                sys.exit("alternate %s: no /health requests in a phase" % name)
            ratios.append(b / a)
            sums["A"] += a
            sums["B"] += b
    lo, hi = median_ci(ratios)
    return {
        "pairs": len(ratios),
        "ratio_to_health": round(statistics.median(ratios), 3),
        "ratio_to_health_ci95": [round(lo, 3), round(hi, 3)],
        "ratio_of_sums": round(sums["B"] / sums["A"], 3),
        "ratio_sd": round(statistics.stdev(ratios), 3),
    }

for r in results:
    r["alternating"] = alternating(r["setup"])

# Instructions per request under callgrind (the server's user space; /health and /me on
# one process): deterministic, so they show what a change costs whatever the machine does.
instructions = {}
path = os.path.join(out, "instructions.tsv")
if os.path.exists(path):
    for line in open(path):
        name, n, health_ir, me_ir = line.split()
        n = int(n)
        instructions[name] = {
            "requests": n,
            "health": round(int(health_ir) / n),
            "me": round(int(me_ir) / n),
            "ratio_to_health": round(int(health_ir) / int(me_ir), 3),
        }
for r in results:
    if r["setup"] in instructions:
        r["server_instructions"] = instructions[r["setup"]]

propagation = json.load(open(os.path.join(out, "propagation.json")))
machine = {
    "nproc": os.cpu_count(),
    "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
    "load_average_before": load_before, "load_average_after": load_after,
}
doc = {
    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    "wrk": {"threads": threads, "connections": conns, "duration_s": duration, "rounds": rounds},
    "alternating": {"duration_s": int(alt_duration), "phase_ms": int(phase_ms)},
    "machine": machine,
    "idle_redis_commands_per_run": idle_commands,
    "setups": results,
    "instructions_requests_per_route": next(iter(instructions.values()))["requests"] if instructions else None,
    "propagation": propagation,
}
json.dump(doc, open(os.path.join(out, "results.json"), "w"), indent=1)
with open(os.path.join(out, "results.csv"), "w") as f:
    f.write("setup,requests_per_s,p50_ms,p99_ms,ratio_to_health,server_cpu_us_per_request,redis_cpu_us_per_request,wrk_cpu_us_per_request,cpu_ratio_to_health,redis_commands_per_request\n")
    for r in results:
        f.write("%s,%.1f,%.3f,%.3f,%.3f,%.2f,%.2f,%.2f,%.3f,%.4f\n" % (r["setup"], r["rps"], r["p50_ms"], r["p99_ms"], r["ratio_to_health"], r["server_cpu_us_per_request"], r["redis_cpu_us_per_request"], r["wrk_cpu_us_per_request"], r["cpu_ratio_to_health"], r["redis_commands_per_request"]))

# --- the chart: requests/s (left) and latency p50/p99 (right), one row per setup ---
W, row, top = 1160, 46, 78
H = top + row * len(results) + 70
lx, lw = 250, 290          # requests/s panel
rx, rw = 600, 250          # latency panel
cx, cw = 910, 190          # CPU per request panel
esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;")
svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">' % (W, H, W, H),
       '<rect width="100%" height="100%" fill="white"/>',
       '<text x="12" y="24" font-size="16" font-weight="bold">tower-jwt-auth example server under wrk (ratio to /health: median of %d pairs of runs; in parentheses, of pairs of %s ms phases)</text>' % (rounds, phase_ms),
       '<text x="12" y="44" fill="#555">wrk -t%d -c%d -d%ds --latency, loopback, %d cores shared by wrk, servers and Redis; load %s</text>' % (threads, conns, duration, machine["nproc"], esc(load_before)),
       '<text x="%d" y="%d" font-weight="bold">requests/s (ratio to /health)</text>' % (lx, top - 10),
       '<text x="%d" y="%d" font-weight="bold">latency, ms: p50 <tspan fill="#4c78a8">&#9632;</tspan> p99 <tspan fill="#f58518">&#9632;</tspan></text>' % (rx, top - 10),
       '<text x="%d" y="%d" font-weight="bold">CPU µs/request: server <tspan fill="#555">&#9632;</tspan> Redis <tspan fill="#d62728">&#9632;</tspan></text>' % (cx, top - 10)]
max_cpu = max(r["server_cpu_us_per_request"] + r["redis_cpu_us_per_request"] for r in results)
max_rps = max(r["rps"] for r in results)
max_lat = max(r["p99_ms"] for r in results)
colors = {"health": "#9e9e9e", "me-open": "#bdbdbd", "me-memory": "#2e7d32", "me-memory-nocache": "#81c784", "me-redis": "#1565c0", "me-redis-nocache": "#64b5f6", "baseline": "#c62828", "me-oidc-rs256": "#6a1b9a", "me-oidc-rs256-nocache": "#ba68c8"}
for i, r in enumerate(results):
    y = top + i * row
    svg.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (lx - 10, y + 22, esc(r["label"])))
    bw = lw * r["rps"] / max_rps
    svg.append('<rect x="%d" y="%d" width="%.1f" height="26" fill="%s"/>' % (lx, y + 6, bw, colors[r["setup"]]))
    svg.append('<text x="%.1f" y="%d" fill="white" text-anchor="end">%s</text>' % (lx + bw - 4, y + 24, "{:,.0f}".format(r["rps"])))
    svg.append('<text x="%.1f" y="%d">%.2fx <tspan fill="#555" font-size="11">(phases %.2f)</tspan></text>' % (lx + bw + 4, y + 24, r["ratio_to_health"], r["alternating"]["ratio_to_health"]))
    for j, (k, c) in enumerate((("p50_ms", "#4c78a8"), ("p99_ms", "#f58518"))):
        lw2 = rw * r[k] / max_lat
        svg.append('<rect x="%d" y="%d" width="%.1f" height="12" fill="%s"/>' % (rx, y + 6 + j * 14, lw2, c))
        svg.append('<text x="%.1f" y="%d" font-size="11">%.2f</text>' % (rx + lw2 + 3, y + 16 + j * 14, r[k]))
    sw = cw * r["server_cpu_us_per_request"] / max_cpu
    rw2 = cw * r["redis_cpu_us_per_request"] / max_cpu
    svg.append('<rect x="%d" y="%d" width="%.1f" height="26" fill="#555"/>' % (cx, y + 6, sw))
    svg.append('<rect x="%.1f" y="%d" width="%.1f" height="26" fill="#d62728"/>' % (cx + sw, y + 6, rw2))
    svg.append('<text x="%.1f" y="%d" font-size="11">%.1f + %.1f</text>' % (cx + sw + rw2 + 3, y + 24, r["server_cpu_us_per_request"], r["redis_cpu_us_per_request"]))
yb = top + row * len(results) + 18
cmds = ", ".join("%s %.4f" % (r["setup"], r["redis_commands_per_request"]) for r in results if r["setup"] in ("me-redis", "me-redis-nocache", "baseline"))
svg.append('<text x="12" y="%d">Redis commands per request: %s</text>' % (yb, cmds))
p = propagation["logout_start_to_refused_ms"]
svg.append('<text x="12" y="%d">Logout on B until A refuses the token (HTTP, %d samples): p50 %.2f ms, p99 %.2f ms</text>' % (yb + 20, propagation["samples"], p["p50"], p["p99"]))
svg.append('<text x="%d" y="%d" fill="#777" font-size="11" text-anchor="end">%s</text>' % (W - 10, yb + 40, esc(doc["date"])))
svg.append("</svg>")
open(os.path.join(out, "bench-http.svg"), "w").write("\n".join(svg) + "\n")

# --- the table, for BENCHMARKS.md ---
print("| setup | requests/s | ratio to /health: median [95% CI] (range) | p50 ms | p99 ms | CPU µs / req: server | Redis | wrk | CPU ratio | Redis commands / req |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in results:
    cmd = "-" if r["setup"] in ("health", "me-open", "me-memory", "me-memory-nocache", "me-oidc-rs256", "me-oidc-rs256-nocache") else "%.4f" % r["redis_commands_per_request"]
    print("| %s | %s | %.2f [%.2f–%.2f] (%.2f–%.2f) | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |" % (
        r["label"], "{:,.0f}".format(r["rps"]), r["ratio_to_health"],
        *r["ratio_to_health_ci95"], min(r["ratio_to_health_per_round"]),
        max(r["ratio_to_health_per_round"]), r["p50_ms"], r["p99_ms"],
        r["server_cpu_us_per_request"], r["redis_cpu_us_per_request"], r["wrk_cpu_us_per_request"],
        r["cpu_ratio_to_health"], cmd))
print()
print("The same ratios from one run per setup alternating /health and the setup's request in phases of %s ms (%s s, pairs of neighbouring phases in the order A B B A; the health row alternates /health with itself):" % (phase_ms, alt_duration))
print()
print("| setup | ratio to /health: median [95% CI] | ratio of the sums | pairs | sd of a pair |")
print("| --- | ---: | ---: | ---: | ---: |")
for r in results:
    a = r["alternating"]
    print("| %s | %.3f [%.3f–%.3f] | %.3f | %d | %.3f |" % (r["label"], a["ratio_to_health"], *a["ratio_to_health_ci95"], a["ratio_of_sums"], a["pairs"], a["ratio_sd"]))
if instructions:
    print()
    print("Server instructions per request (user space, callgrind, %d requests per route, one tokio worker):" % next(iter(instructions.values()))["requests"])
    print()
    print("| setup | /health | /me | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for r in results:
        i = r.get("server_instructions")
        if i:
            print("| %s | %s | %s | %.2f |" % (r["label"], "{:,}".format(i["health"]), "{:,}".format(i["me"]), i["ratio_to_health"]))
p, c = propagation["logout_start_to_refused_ms"], propagation["logout_confirmed_to_refused_ms"]
print()
print("Propagation, logout on B until A answers 401 (%d samples, HTTP): p50 %.2f ms, p99 %.2f ms, max %.2f ms;"
      " from B's 204 until A refuses: p50 %.2f ms, p99 %.2f ms (poll round trip %.2f ms)." % (
      propagation["samples"], p["p50"], p["p99"], p["max"], c["p50"], c["p99"], propagation["poll_round_trip_ms"]["p50"] or 0))
print("Idle Redis commands over %ds (background of both RedisStore instances): %d." % (duration, idle_commands))
print("Load average before/after: %s / %s." % (load_before, load_after))
