#!/usr/bin/env python3
"""The summary of scripts/bench (Markdown on stdout) from the logs and criterion
estimates it left in OUT and the results of scripts/bench-http.

    bench_summary.py OUT BENCH_HTTP_RESULTS_JSON
"""
import json, os, re, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import criterion_estimates  # noqa: E402

out, http_results = sys.argv[1], sys.argv[2]

def est(backend, group, bench):
    return criterion_estimates.median(out, backend, group, bench)

def t(ns):
    if ns is None:
        return "-"
    return "%.0f ns" % ns if ns < 1000 else "%.2f µs" % (ns / 1000)

print("# Benchmark summary\n")
print("```")
print(open(os.path.join(out, "machine.txt")).read().rstrip())
print("```\n")

print("## Criterion: full layer vs bare `jsonwebtoken::decode` (medians)\n")
print("`layer` is a verified-token cache hit (the default); `cache off` verifies every request.\n")
print("| backend | algorithm | decode | layer (hit) | hit / decode | layer, cache off | cache off / decode |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
def ratio(a, b):
    return "%.3f" % (a / b) if a and b else "-"
for backend in ("rust_crypto", "aws_lc_rs"):
    for alg in ("HS256", "RS256", "ES256", "EdDSA"):
        g = "verify/%s/%s" % (backend, alg)
        d, l, u = est(backend, g, "jsonwebtoken::decode"), est(backend, g, "layer"), est(backend, g, "layer, cache off")
        print("| %s | %s | %s | %s | %s | %s | %s |" % (backend, alg, t(d), t(l), ratio(l, d), t(u), ratio(u, d)))

print("\n## Criterion: the verified-token cache (HS256, medians)\n")
print("| bench | rust_crypto | aws_lc_rs |")
print("| --- | ---: | ---: |")
for name in ("hit, 1 live", "hit, 100000 live", "new token every request, cache on", "new token every request, cache off"):
    print("| %s | %s | %s |" % (name, t(est("rust_crypto", "token_cache/HS256", name)), t(est("aws_lc_rs", "token_cache/HS256", name))))

print("\n## Criterion: rejections (HS256) and revocation checks (medians)\n")
print("| bench | rust_crypto | aws_lc_rs |")
print("| --- | ---: | ---: |")
for name in ("bad signature", "expired", "revoked", "garbage"):
    print("| reject/%s | %s | %s |" % (name, t(est("rust_crypto", "reject/HS256", name)), t(est("aws_lc_rs", "reject/HS256", name))))
for n in ("0", "10000", "1000000"):
    for kind in ("miss", "hit"):
        a, b = est("rust_crypto", "check/" + n, kind), est("aws_lc_rs", "check/" + n, kind)
        if a is None and b is None:
            continue
        print("| check/%s/%s | %s | %s |" % (n, kind, t(a), t(b)))

print("\n## Instructions per request (callgrind, HS256, rust_crypto)\n")
counts = {}
for line in open(os.path.join(out, "instructions.log")):
    m = re.match(r"instructions ([\w-]+) (\d+) (\d+)", line)
    if m:
        counts[(m.group(1), int(m.group(2)))] = int(m.group(3))
per = {}
for mode in ("decode", "layer", "layer-uncached", "miss", "miss-uncached"):
    (n1, c1), (n2, c2) = sorted((n, c) for (md, n), c in counts.items() if md == mode)
    per[mode] = (c2 - c1) / (n2 - n1)
print("| decode | layer (cache hit) | hit / decode | layer, cache off | cache off / decode |")
print("| ---: | ---: | ---: | ---: | ---: |")
print("| %.0f | %.0f | %.3f | %.0f | %.3f |" % (per["decode"], per["layer"], per["layer"] / per["decode"],
      per["layer-uncached"], per["layer-uncached"] / per["decode"]))
print("\nA new token every request (the cache's worst stream; minting included in both):"
      " cache on %.0f, cache off %.0f instructions, ratio %.3f." % (per["miss"], per["miss-uncached"], per["miss"] / per["miss-uncached"]))

def grep(log, pattern):
    return [l.rstrip() for l in open(os.path.join(out, log)) if re.search(pattern, l)]

print("\n## Memory per revoked token (benches/memory.rs)\n")
print("```")
print("\n".join(grep("memory.log", r"revocations:|rss|bytes per|token cache")))
print("```")
print("\n## Redis store: start-up load of 1M revocations, store-level propagation\n")
print("```")
print("\n".join(grep("redis-load.log", r"connect loaded")))
print("\n".join(grep("redis-propagation.log", r"^\[appendfsync")))
print("```")

print("\n## HTTP (scripts/bench-http)\n")
print("```")
print("\n".join(l for l in open(os.path.join(out, "bench-http.log")) .read().splitlines()
                if l.startswith("|") or l.startswith("The same ratios") or l.startswith("Propagation") or l.startswith("Idle") or l.startswith("Load")))
print("```")

print("\n## Durations\n")
print("| step | seconds |")
print("| --- | ---: |")
for line in open(os.path.join(out, "durations.tsv")):
    name, secs = line.split()
    print("| %s | %s |" % (name, secs))
