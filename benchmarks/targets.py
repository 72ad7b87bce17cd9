"""The targets of `make bench`: the ratios of a run checked against what the
README promises, printed and written beside the rows."""


def summarize(rows):
    def find(group, case_prefix, impl):
        for r in rows:
            if r["group"] == group and r["case"].startswith(case_prefix) and r["impl"] == impl:
                return r
        return None

    checks = []
    largest = max((r["case"].split()[0] for r in rows if r["group"] == "dense"),
                  key=float, default=None)
    for momentum in ("m=0.0", "m=0.9"):
        case = f"{largest} {momentum} c=0"
        ours = find("dense", case, "ours (op)")
        if ours is None:
            continue
        tf_row = find("dense", case, "tf raw op")
        stock = find("dense", case, "keras stock")
        checks.append((f"dense {case}: ours reaches >= 85% of the bandwidth limit",
                       ours["of_limit"], ours["of_limit"] >= 0.85))
        checks.append((f"dense {case}: >= 1.5x TF raw op", tf_row["ours_speedup"],
                       tf_row["ours_speedup"] >= 1.5))
        checks.append((f"dense {case}: >= 3x stock Keras", stock["ours_speedup"],
                       stock["ours_speedup"] >= 3))
    sparse = find("sparse", "4096 rows", "ours (op)")
    if sparse:
        tf_row = find("sparse", "4096 rows", "tf raw op")
        stock = find("sparse", "4096 rows", "keras stock")
        checks.append(("sparse 4096 rows: >= 20x TF raw sparse op", tf_row["ours_speedup"],
                       tf_row["ours_speedup"] >= 20))
        checks.append(("sparse 4096 rows: >= 200x stock Keras", stock["ours_speedup"],
                       stock["ours_speedup"] >= 200))
        checks.append(("sparse 4096 rows: within 3x of the bandwidth limit", sparse["of_limit"],
                       sparse["of_limit"] >= 1 / 3))
    for level in ("op", "op, eager", "keras"):
        per_var = find("many", "", f"ours per-var ({level})")
        if per_var:
            checks.append((f"{per_var['case']}: grouped >= 10x per-variable ops ({level})",
                           per_var["grouped_speedup"], per_var["grouped_speedup"] >= 10))
    sweep = [r for r in rows if r["group"] == "sweep" and r["impl"] == "tf raw op"]
    if sweep:
        slowest = min(sweep, key=lambda r: r["ours_speedup"])
        checks.append((f"sweep: never slower than TensorFlow's op (slowest: {slowest['case']})",
                       slowest["ours_speedup"], slowest["ours_speedup"] >= 0.95))
    for r in rows:
        if r["group"] == "fit" and r["impl"] == "ours (keras)":
            wanted = 4.0 if r["case"].startswith("Embedding") else (
                1.5 if r["case"].startswith("deep MLP") else 1.0)
            checks.append((f"fit {r['case']}: >= {wanted}x stock Keras per step",
                           r["ours_speedup"], r["ours_speedup"] >= wanted))
            checks.append((f"fit {r['case']}: final loss agrees with stock Keras (1 = yes)",
                           float(r["losses_agree"]), r["losses_agree"]))
    for r in rows:
        if r["group"] == "extras" and r["impl"] == "keras stock":
            ours = find("extras", r["case"], "ours (keras)")
            label = r["case"].split(" ", 1)[1]
            if label == "none":
                continue
            wanted = 4.0 if label == "all three" else 3.5
            checks.append((f"extras {r['case']}: >= {wanted}x stock Keras", r["ours_speedup"],
                           r["ours_speedup"] >= wanted))
            if label == "all three":
                checks.append((f"extras {r['case']}: ours >= 80% of the bandwidth limit",
                               ours["of_limit"], ours["of_limit"] >= 0.8))
    for r in rows:
        if r["group"] != "xla":
            continue
        if r["impl"] == "keras stock, XLA" and "of_limit" in r:
            checks.append((f"xla {r['case']}: >= 1.5x stock Keras under XLA",
                           r["ours_speedup"], r["ours_speedup"] >= 1.5))
        elif r["impl"] == "ours (keras)" and "of_limit" in r:
            checks.append((f"xla {r['case']}: >= 0.9x ours without XLA", r["ours_speedup"],
                           r["ours_speedup"] >= 0.9))
        elif r["impl"] == "keras stock" and "final_loss" in r:
            checks.append((f"fit jit_compile=True {r['case']}: >= 1.5x stock Keras per step "
                           "(stock without XLA: it fails to compile)", r["ours_speedup"],
                           r["ours_speedup"] >= 1.5))
        elif r["impl"] == "keras stock, XLA" and "final_loss" in r:
            checks.append((f"fit jit_compile=True {r['case']}: >= 1.5x stock Keras per step",
                           r["ours_speedup"], r["ours_speedup"] >= 1.5))
        elif r["impl"] == "ours (keras), XLA" and "losses_agree" in r:
            checks.append((f"fit jit_compile=True {r['case']}: final loss agrees with stock "
                           "Keras (1 = yes)", float(r["losses_agree"]), r["losses_agree"]))
    for r in rows:
        if r["group"] != "compact":
            continue
        fmt = r["impl"].split()[0]
        if "smaller_than_float32" in r and fmt != "float32":
            wanted = 3.8 if fmt == "int8" else 1.95
            checks.append((f"compact {r['case']}: {fmt} state >= {wanted}x smaller than float32",
                           r["smaller_than_float32"], r["smaller_than_float32"] >= wanted))
        elif "vs_float32_state" in r and fmt == "int8" and r["case"].endswith("dense"):
            # (The promise is the dense update's; in a sparse one a touched
            # row brings its block of rows: benchmarks/README.md.)
            checks.append((f"compact {r['case']}: int8 state no slower than float32 state",
                           r["vs_float32_state"], r["vs_float32_state"] >= 1.0))
    # The arithmetic alone, on every thread of the run: the in-cache time of
    # one thread divided by the thread count (1.0: compute-bound).
    floors = {r["impl"]: r["ns_per_element"] / r["threads_of_run"]
              for r in rows if r["group"] == "floor"}
    for r in rows:
        if "per_byte_vs_float32" in r and r["impl"] in floors:
            n = float(r["case"].split()[0])
            r["of_compute_floor"] = floors[r["impl"]] * n * 1e-9 / (r["ms"] * 1e-3)
    for r in rows:
        if "per_byte_vs_float32" in r:
            checks.append((f"{r['case']} {r['impl']}: per byte no slower than float32",
                           r["per_byte_vs_float32"], r["per_byte_vs_float32"] >= 0.95))

    print("\nTargets (ratios from this run):")
    for description, value, ok in checks:
        print(f"  [{'met' if ok else 'MISSED'}] {description}: {value:.2f}")
    for r in rows:
        if "of_compute_floor" in r:
            print(f"  ({r['case']} {r['impl']} runs at {r['of_compute_floor']:.2f} of its "
                  "in-cache, arithmetic-bound speed)")
    return [dict(target=d, value=v, met=bool(ok)) for d, v, ok in checks]
