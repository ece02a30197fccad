"""Reading the criterion estimates that scripts/bench leaves in its output directory;
shared by bench_summary.py and cache_chart.py."""
import json, os


def median(out, backend, group, bench):
    """Criterion's median point estimate in ns for `bench` of `group`, run with the
    crypto `backend` into OUT/criterion-<backend>; None when it was not run."""
    group = group.replace("/", "_")
    bench = bench.replace("::", "__").replace("/", "_")
    path = os.path.join(out, "criterion-" + backend, group, bench, "new", "estimates.json")
    try:
        return json.load(open(path))["median"]["point_estimate"]
    except OSError:
        return None
