"""Renders a run of `make bench` as Markdown, and publishes it.

`python -m benchmarks.table [results.json]` prints the full table (default:
the published results, benchmarks/results/published.json).
`python -m benchmarks.table --publish [results.json]` (default: the last
run, benchmarks/results/run.json) copies that run and its picture to
published.json / published.png and rewrites the generated parts of
benchmarks/README.md (the full table) and README.md (the headline), so that
every number the documents show comes from that one run."""
import json
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
PUBLISHED = os.path.join(RESULTS, "published.json")
TABLE_MARKERS = ("<!-- bench-table:begin (written by python -m benchmarks.table --publish) -->",
                 "<!-- bench-table:end -->")
HEADLINE_MARKERS = ("<!-- bench-headline:begin (written by python -m benchmarks.table --publish) -->",
                    "<!-- bench-headline:end -->")


def _about(results):
    machine = results["machine"]
    return (f"Measured {results['date']} on {machine['cpu']}, {machine['cores']} cores "
            f"({machine['intra_op_threads']} intra-op threads), TensorFlow {machine['tensorflow']}, "
            f"Keras {machine['keras']}, Python {machine['python']}, all in one run of `make bench`.")


def render(results):
    lines = [
        _about(results) + " Times are per update (per step for the fits), the median of repeated "
        "runs after warm-up; the implementations of a case and its limit are measured in turn, "
        "the best of three rounds (two for the `fit` rows and the `xla` fits). \"limit\" is "
        "the bandwidth probe moving the "
        "same bytes; \"of limit\" = limit / time. Every implementation of a case makes the same number of updates per "
        "`tf.function` call (\"eager\": none).",
        "",
        "| group | case | implementation | updates per call | ms | limit ms | of limit | speed-up of ours |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        speedup = next((r[k] for k in ("ours_speedup", "grouped_speedup", "per_byte_vs_float32",
                                       "vs_float32_state", "smaller_than_float32")
                        if r.get(k) is not None), None)
        per_call = r.get("per_call")
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["group"], r["case"], r["impl"],
            "" if per_call is None else "eager" if per_call == 0 else per_call,
            "" if r["ms"] is None else f"{r['ms']:.3f}",
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


def _row(rows, group, case_prefix, impl):
    return next((r for r in rows if r["group"] == group and r["case"].startswith(case_prefix)
                 and r["impl"] == impl), None)


def headline(results):
    """The README's few lines, from the same run."""
    rows = results["rows"]
    lines = [_about(results) + " Speed-ups are ours against each, in the same run:", ""]
    dense = [r for r in rows if r["group"] == "dense" and r["case"].startswith("1.6e7")
             and r["impl"] in ("tf raw op", "keras stock")]
    ours = [r for r in rows if r["group"] == "dense" and r["case"].startswith("1.6e7")
            and r["impl"] == "ours (op)"]
    if dense and ours:
        tf_ratios = [r["ours_speedup"] for r in dense if r["impl"] == "tf raw op"]
        stock = [r["ours_speedup"] for r in dense if r["impl"] == "keras stock"]
        limits = [r["of_limit"] for r in ours]
        lines.append(f"- Dense float32, 1.6e7 elements (4 variants): {min(limits):.0%}-"
                     f"{max(limits):.0%} of the bandwidth limit; {min(tf_ratios):.1f}-"
                     f"{max(tf_ratios):.1f}x TensorFlow's `ResourceApply(Centered)RMSProp`, "
                     f"{min(stock):.1f}-{max(stock):.1f}x stock Keras 3.")
    sweep = [r for r in rows if r["group"] == "sweep" and r["impl"] == "tf raw op"]
    if sweep:
        big = [r["ours_speedup"] for r in sweep if float(r["case"].split()[1]) >= 1e4]
        small = [r["ours_speedup"] for r in sweep if float(r["case"].split()[1]) < 1e4]
        lines.append(f"- Every variant and dtype against TensorFlow's op: {min(big):.1f}-"
                     f"{max(big):.1f}x from 1e4 to 1.6e7 elements; at 1e2 and 1e3, where both "
                     f"cost the op's fixed few microseconds, {min(small):.2f}-{max(small):.2f}x.")
    sparse_tf = _row(rows, "sparse", "4096 rows", "tf raw op")
    sparse_stock = _row(rows, "sparse", "4096 rows", "keras stock")
    if sparse_tf and sparse_stock:
        lines.append(f"- Sparse, {sparse_tf['case'].split(' m=')[0]}: "
                     f"{sparse_tf['ours_speedup']:.1f}x TensorFlow's `ResourceSparseApplyRMSProp`, "
                     f"{sparse_stock['ours_speedup']:.0f}x stock Keras (which densifies the table).")
    many = _row(rows, "many", "", "keras stock")
    grouped = _row(rows, "many", "", "ours grouped (keras)")
    if many and grouped:
        lines.append(f"- {many['case'].split(' m=')[0]}, one update per call as `fit` makes it: "
                     f"{many['ms'] / grouped['ms']:.1f}x stock Keras.")
    extras = [r for r in rows if r["group"] == "extras" and r["impl"] == "keras stock"]
    if extras:
        size = extras[0]["case"].split()[0]
        ratios = "; ".join(f"{r['case'].split(' ', 1)[1]} {r['ours_speedup']:.1f}x" for r in extras)
        all_three = _row(rows, "extras", f"{size} all three", "ours (keras)")
        limit = f"; with all three at {all_three['of_limit']:.0%} of the bandwidth limit" if (
            all_three and "of_limit" in all_three) else ""
        lines.append(f"- Keras's steps around the update fused into it, {size} float32 elements, "
                     f"momentum 0.9, against stock Keras: {ratios}{limit}.")
    fits = [r for r in rows if r["group"] == "fit" and r["impl"] == "ours (keras)"]
    if fits:
        lines.append("- `model.fit`, steps per second against stock Keras: " + "; ".join(
            f"{r['case'].rsplit(', batch', 1)[0]} {r['ours_speedup']:.2f}x" for r in fits) + ".")
    return "\n".join(lines)


def _replace_between(path, markers, text):
    with open(path) as f:
        content = f.read()
    pattern = re.compile(re.escape(markers[0]) + ".*?" + re.escape(markers[1]), re.S)
    if not pattern.search(content):
        raise SystemExit(f"{path} has no {markers[0]} ... {markers[1]} block")
    with open(path, "w") as f:
        f.write(pattern.sub(lambda _: f"{markers[0]}\n{text}\n{markers[1]}", content))


def publish(source):
    with open(source) as f:
        results = json.load(f)
    if os.path.abspath(source) != PUBLISHED:
        shutil.copyfile(source, PUBLISHED)
        picture = os.path.splitext(source)[0] + ".png"
        if os.path.exists(picture):
            shutil.copyfile(picture, os.path.join(RESULTS, "published.png"))
    _replace_between(os.path.join(HERE, "README.md"), TABLE_MARKERS, render(results))
    _replace_between(os.path.join(ROOT, "README.md"), HEADLINE_MARKERS, headline(results))
    print(f"published {source}")


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--publish":
        publish(args[1] if len(args) > 1 else os.path.join(RESULTS, "run.json"))
        return 0
    with open(args[0] if args else PUBLISHED) as f:
        print(render(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
