#!/usr/bin/env python3
"""The verified-token cache's chart (SVG on stdout) from the criterion estimates that
scripts/bench left in OUT: per backend and algorithm, a bare `jsonwebtoken::decode`, the
layer on a cache hit and the layer with the cache off; then the cache's own benches
(hits with 1 and 100 000 live tokens, the worst stream with the cache on and off).
Times on a logarithmic axis, each bar labelled with its median.

    cache_chart.py OUT > docs/bench-cache.svg
"""
import math, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import criterion_estimates  # noqa: E402

out = sys.argv[1]


def est(backend, group, bench):
    return criterion_estimates.median(out, backend, group, bench)


def label(ns):
    return "%.0f ns" % ns if ns < 1000 else "%.1f µs" % (ns / 1000)


rows = []  # (group label, [(series, ns)])
for backend in ("rust_crypto", "aws_lc_rs"):
    for alg in ("HS256", "RS256", "ES256", "EdDSA"):
        g = "verify/%s/%s" % (backend, alg)
        rows.append((
            "%s %s" % (alg, backend),
            [("decode", est(backend, g, "jsonwebtoken::decode")),
             ("hit", est(backend, g, "layer")),
             ("off", est(backend, g, "layer, cache off"))],
        ))
for backend in ("rust_crypto", "aws_lc_rs"):
    g = "token_cache/HS256"
    rows.append((
        "HS256 %s: hits" % backend,
        [("hit", est(backend, g, "hit, 1 live")),
         ("hit100k", est(backend, g, "hit, 100000 live"))],
    ))
    rows.append((
        "HS256 %s: new token each request" % backend,
        [("hit", est(backend, g, "new token every request, cache on")),
         ("off", est(backend, g, "new token every request, cache off"))],
    ))

colors = {"decode": "#888888", "hit": "#2a7ab9", "hit100k": "#6aaed6", "off": "#d95f02"}
names = {
    "decode": "bare jsonwebtoken::decode",
    "hit": "layer, cache hit (1 live token) / cache on",
    "hit100k": "layer, cache hit (100 000 live tokens)",
    "off": "layer, cache off",
}

values = [ns for _, series in rows for _, ns in series if ns]
lo, hi = 10 ** math.floor(math.log10(min(values))), 10 ** math.ceil(math.log10(max(values)))
left, width, bar, gap, top = 290, 560, 11, 10, 60
height = top + sum(len(s) * bar + gap for _, s in rows) + 60


def x(ns):
    return left + width * (math.log10(ns) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))


svg = [
    '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
    % (left + width + 90, height),
    '<rect width="100%" height="100%" fill="white"/>',
    '<text x="10" y="20" font-size="14" font-weight="bold">Per request: the verified-token cache against a signature check (criterion medians, one run)</text>',
]
legend_x = 10
for key in ("decode", "hit", "hit100k", "off"):
    svg.append('<rect x="%d" y="32" width="10" height="10" fill="%s"/>' % (legend_x, colors[key]))
    svg.append('<text x="%d" y="41">%s</text>' % (legend_x + 14, names[key]))
    legend_x += 14 + 6 * len(names[key]) + 16
y = top
for group, series in rows:
    svg.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + bar * len(series) / 2 + 4, group))
    for key, ns in series:
        if ns:
            svg.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (left, y, x(ns) - left, bar - 1, colors[key]))
            svg.append('<text x="%.1f" y="%d">%s</text>' % (x(ns) + 4, y + bar - 2, label(ns)))
        y += bar
    y += gap
decade = lo
while decade <= hi:
    svg.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>' % (x(decade), x(decade), top - 6, y))
    svg.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x(decade), y + 14, label(decade)))
    decade *= 10
svg.append('<text x="%d" y="%d">time per request, logarithmic</text>' % (left, y + 32))
svg.append("</svg>")
print("\n".join(svg))
