#!/usr/bin/env python3
"""Sends N keep-alive GET requests, one at a time, to 127.0.0.1:PORT PATH (with a bearer
token if given), and fails unless every answer is 200. scripts/bench-http counts the
server's instructions over such a batch.

    http_client.py PORT PATH N [TOKEN]
"""
import http.client, sys

port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
headers = {"Authorization": "Bearer " + sys.argv[4]} if len(sys.argv) > 4 else {}
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for i in range(n):
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        sys.exit("request %d to %s: status %d" % (i, path, response.status))
