#!/usr/bin/env python3
"""Propagation of a logout between two example-server instances on one Redis, over HTTP
(scripts/bench-http): log in on A, log out on B, poll A until it answers 401, SAMPLES
times after 20 warm-up rounds. Prints the figures as JSON on stdout.

    http_propagation.py A_PORT B_PORT SAMPLES

Only 127.0.0.1; every loop is bounded (5 s per sample, 240 s in all).
"""
import http.client, json, sys, time

a_port, b_port, samples = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
a = http.client.HTTPConnection("127.0.0.1", a_port, timeout=5)
b = http.client.HTTPConnection("127.0.0.1", b_port, timeout=5)

def call(conn, method, path, token=None, body=None):
    headers = {"Content-Type": "application/json"} if body else {}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()

creds = json.dumps({"username": "bob", "password": "builder"})
total, after_confirm, polls, rtts = [], [], [], []
deadline = time.monotonic() + 240
for i in range(samples + 20):  # the first 20 warm up connections and caches
    status, body = call(a, "POST", "/login", body=creds)
    assert status == 200, status
    token = json.loads(body)["access_token"]
    assert call(a, "GET", "/me", token)[0] == 200
    t0 = time.perf_counter()
    status, _ = call(b, "POST", "/logout", token)
    assert status == 204, status
    t1 = time.perf_counter()
    n = 0
    while True:
        p = time.perf_counter()
        status, _ = call(a, "GET", "/me", token)
        n += 1
        rtts.append(time.perf_counter() - p)
        if status == 401:
            break
        assert status == 200, status
        assert time.perf_counter() - t0 < 5, "A never refused the logged-out token"
    t2 = time.perf_counter()
    if i >= 20:
        total.append(t2 - t0)
        after_confirm.append(t2 - t1)
        polls.append(n)
    assert time.monotonic() < deadline, "propagation took too long overall"

def pct(v, p):
    v = sorted(v)
    return v[round((len(v) - 1) * p)]

ms = lambda s: round(s * 1000, 3)
json.dump({
    "samples": samples,
    "logout_start_to_refused_ms": {"p50": ms(pct(total, .5)), "p99": ms(pct(total, .99)), "max": ms(max(total))},
    "logout_confirmed_to_refused_ms": {"p50": ms(pct(after_confirm, .5)), "p99": ms(pct(after_confirm, .99)), "max": ms(max(after_confirm))},
    "polls_per_sample": {"p50": pct(polls, .5), "max": max(polls)},
    "poll_round_trip_ms": {"p50": ms(pct(rtts, .5)) if rtts else None},
}, sys.stdout, indent=1)
