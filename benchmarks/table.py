"""Renders a run's results as the Markdown table of benchmarks/README.md:
`python -m benchmarks.table [results.json]` (default: the published
results, benchmarks/results/published.json)."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def render(results):
    machine = results["machine"]
    lines = [
        f"Measured {results['date']} on {machine['cpu']}, {machine['cores']} cores "
        f"({machine['intra_op_threads']} intra-op threads), TensorFlow {machine['tensorflow']}, "
        f"Keras {machine['keras']}, Python {machine['python']}. Times are per update, the "
        "median of repeated runs after warm-up, all from one run of `make bench`. "
        "\"limit\" is the bandwidth probe moving the same bytes; \"of limit\" = limit / time. "
        "Every implementation of a case makes the same number of updates per `tf.function` "
        "call (\"eager\": none).",
        "",
        "| group | case | implementation | updates per call | ms | limit ms | of limit | speed-up of ours |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        speedup = next((r[k] for k in ("ours_speedup", "grouped_speedup", "per_byte_vs_float32")
                        if r.get(k) is not None), None)
        per_call = r.get("per_call")
        lines.append("| {} | {} | {} | {} | {:.3f} | {} | {} | {} |".format(
            r["group"], r["case"], r["impl"],
            "" if per_call is None else "eager" if per_call == 0 else per_call, r["ms"],
            f"{r['limit_ms']:.3f}" if "limit_ms" in r else "",
            f"{r['of_limit']:.0%}" if "of_limit" in r else "",
            f"{speedup:.2f}x" if speedup is not None else ""))
    lines += ["", "Targets:", ""]
    for t in results["targets"]:
        lines.append(f"- {'met' if t['met'] else '**missed**'}: {t['target']} ({t['value']:.2f})")
    floors = [r for r in results["rows"] if "of_compute_floor" in r]
    if floors:
        lines += ["", "Half precision against the same update on data in the caches "
                  "(the \"floor\" rows: arithmetic only):", ""]
        lines += [f"- {r['case']} {r['impl']}: {r['of_compute_floor']:.2f} of its in-cache speed"
                  for r in floors]
    return "\n".join(lines)


def main(argv=None):
    path = (argv or sys.argv[1:] or [os.path.join(HERE, "results", "published.json")])[0]
    with open(path) as f:
        print(render(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
