"""`make bench-check`: compares bench/results.json (from `make bench`) with bench/budgets.json;
prints every budget with its figure and exits 1 when any is missed."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    results_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results.json")
    with open(results_path) as f:
        r = json.load(f)
    with open(os.path.join(HERE, "budgets.json")) as f:
        b = json.load(f)
    checks = []

    def check(label: str, value: float, limit: float, at_most: bool = True) -> None:
        ok = value <= limit if at_most else value >= limit
        checks.append(ok)
        sign = "≤" if at_most else "≥"
        print(f"{'ok  ' if ok else 'MISS'} {label}: {value:.2f} (budget {sign} {limit})")

    for name, f in r["functions"].items():
        check(f"{name} init ms (median)", f["init_ms_median"], b["init_ms_median_max"])
        check(f"{name} peak RSS MiB at init", f["rss_init_mib"], b["rss_init_mib_max"])
        check(f"{name} peak RSS MiB after 1st request", f["rss_first_mib"], b["rss_first_mib_max"])
        check(f"{name} stripped size MB", f["size_mb"], b["size_mb_max"].get(name, b["size_mb_max"]["default"]))
        check(f"{name} sequential AWS round trips", f["aws_rounds"], b["aws_rounds_max"][name])
        check(f"{name} overhead ms beyond the emulator (median)", f["overhead_ms_median"], b["overhead_ms_median_max"])
        if f.get("arm64_size_mb") is not None:
            check(f"{name} arm64 stripped size MB", f["arm64_size_mb"], b["arm64_size_mb_max"].get(name, b["arm64_size_mb_max"]["default"]))
        if name in b["cpu_ms_per_request_max"]:
            check(f"{name} our CPU ms per warm request", f["cpu_ms_per_request"], b["cpu_ms_per_request_max"][name])
    check("init speed-up over the Python peer", r["init_speedup_vs_peer"], b["init_speedup_vs_peer_min"], at_most=False)
    check("sweep connectors/s", r["sweep"]["per_second"], b["sweep_per_second_min"], at_most=False)
    check("sweep AWS calls per connector", r["sweep"]["aws_calls_per_connector"], b["sweep_aws_calls_per_connector_max"])
    missed = checks.count(False)
    print(f"bench-check: {len(checks) - missed} budgets held, {missed} missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
