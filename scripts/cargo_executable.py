#!/usr/bin/env python3
"""The executable of the target NAME, from `cargo ... --message-format=json` on stdin
(for a bench or test binary, whose file name has a hash in it).

    cargo bench --bench NAME --no-run --message-format=json | cargo_executable.py NAME
"""
import json
import sys

name = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if (
        m.get("reason") == "compiler-artifact"
        and m.get("target", {}).get("name") == name
        and m.get("executable")
    ):
        print(m["executable"])
