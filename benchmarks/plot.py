"""Draws a run of `make bench` as a PNG: time per update against size for
our op, TensorFlow's op, stock Keras and the bandwidth limit (float32,
momentum 0.9), and the speed-up against stock Keras of whole training steps
per model, of Keras's steps around the update (the extras rows) and of the
update and steps compiled by XLA (the xla rows).

`python -m benchmarks.plot [results.json [picture.png]]`; by default the
published results, drawn beside them."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PUBLISHED = os.path.join(HERE, "results", "published.json")


def _size(case):
    return float(case.split()[0]) if case[0].isdigit() else float(case.split()[1])


def _series(rows, group, impl, case_filter, value="ms"):
    points = sorted((_size(r["case"]), r[value]) for r in rows
                    if r["group"] == group and r["impl"] == impl and case_filter(r["case"])
                    and value in r)
    return [p[0] for p in points], [p[1] for p in points]


def draw(results, path):
    rows = results["rows"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    sweep_case = lambda c: c.startswith("float32 ") and c.endswith("m=0.9 c=0 mom slot=1")  # noqa: E731
    dense_case = lambda c: c.endswith("m=0.9 c=0")  # noqa: E731
    lines = [("sweep", "ours (op)", sweep_case, "ms", "ours (op)", "o-"),
             ("sweep", "tf raw op", sweep_case, "ms", "TensorFlow ResourceApplyRMSProp", "s-"),
             ("dense", "keras stock", dense_case, "ms", "stock Keras RMSprop", "^-"),
             ("dense", "ours (op)", dense_case, "limit_ms", "bandwidth limit", "k--")]
    for group, impl, case_filter, value, label, style in lines:
        x, y = _series(rows, group, impl, case_filter, value)
        if x:
            left.loglog(x, [v * 1e3 for v in y], style, label=label)
    left.set_xlabel("elements")
    left.set_ylabel("time per update (us)")
    left.set_title("Dense float32 update, momentum 0.9")
    left.grid(True, which="both", alpha=0.3)
    if left.get_lines():
        left.legend()

    # Whole training steps, then Keras's steps around the update (the extras
    # rows: both sides one update of one large variable).
    fits = [(r["case"].rsplit(", batch", 1)[0], r["ours_speedup"]) for r in rows
            if r["group"] == "fit" and r["impl"] == "ours (keras)"]
    extras = [(f"update {r['case'].split()[0]}, " + r["case"].split(" ", 1)[1].replace(
               "none", "no option"), r["ours_speedup"])
              for r in rows if r["group"] == "extras" and r["impl"] == "keras stock"]
    # Under XLA (jit_compile=True), against stock Keras under XLA where it compiles.
    xla = [(("XLA update " + r["case"].split()[0]) if "of_limit" in r else
            "XLA fit: " + r["case"].rsplit(", batch", 1)[0] +
            ("" if r["impl"].endswith("XLA") else " (stock no XLA)"), r["ours_speedup"])
           for r in rows if r["group"] == "xla" and r["impl"].startswith("keras stock")
           and (r["impl"].endswith("XLA") or "final_loss" in r)]
    bars = [(f"fit: {name}", value, "tab:blue") for name, value in fits] + [
        (name, value, "tab:orange") for name, value in extras] + [
        (name, value, "tab:green") for name, value in xla]
    right.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    for i, (_, value, _) in enumerate(bars):
        right.text(value, i, f" {value:.2f}x", va="center", fontsize=8)
    right.set_xscale("log")
    right.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    right.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    right.axvline(1.0, color="k", linewidth=1)
    right.set_xlabel("speed-up against stock Keras (log scale)")
    right.set_title("Keras: fit steps, steps around the update, XLA")
    right.invert_yaxis()
    machine = results["machine"]
    fig.suptitle(f"{machine['cpu']}, {machine['cores']} cores, TensorFlow "
                 f"{machine['tensorflow']}, Keras {machine['keras']}, {results['date']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = argv if argv is not None else sys.argv[1:]
    source = args[0] if args else PUBLISHED
    target = args[1] if len(args) > 1 else os.path.splitext(source)[0] + ".png"
    with open(source) as f:
        draw(json.load(f), target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
