"""python -m bench.gpu [--quick] [--backend jax|torch ...] [--precision P ...] [--out DIR] [--budget-s S]

Every (job, backend, precision) runs in a process of its own (Keras fixes its
backend at import) and dreams its image twice: the first run pays for
compiling each octave size new to it, the second is the warm figure, what a
daemon that has seen the size gives. Weights are random (seeded), as on the
CPU side: the same network and arithmetic as ImageNet's, without the download.
The table is rewritten after every row, so a run cut short keeps what it measured."""

import argparse
import importlib.util
import json
import os
import subprocess
import time
from pathlib import Path

from ..jobs import CLASSIC, engine_pixel_steps, seed_job
from ..report import machine
from ..sides import run_side

# TensorFlow is the CPU side's; the GPU machines have none. PyTorch first: it runs eagerly, while JAX
# compiles each octave size, so a spent time budget cuts the slow compiles, not everything.
BACKENDS = ("torch", "jax")
PRECISIONS = ("float16", "float32")  # float16 first: what precision "auto" picks on a CUDA GPU
REFERENCE = Path(__file__).with_name("cpu_reference.json")
RUNS = 2  # first (compiles new sizes) and warm


def jobs(quick):
    """(name, image spec, params): the reference job and a 12 MP photo at the Classic preset."""
    if quick:  # small enough for a 2-core CPU: proves the path, measures nothing
        return [("seed", "seed-job", {**seed_job(2)["params"], "octaves": 2}),
                ("12mp", "400x300x3", {**CLASSIC, "octaves": 2, "steps": 2})]
    return [("seed", "seed-job", seed_job()["params"]), ("12mp", "4000x3000x3", CLASSIC)]


def present_backends():
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def seed_loop_rate(reference):
    """Image pixels x steps per second of the reference loop on the CPU cpu_reference.json names."""
    return seed_job()["pixel_steps"] / reference["seed_loop_seconds"]


def measure(job, spec, params, backend, precision, timeout):
    task = {"side": "engine", "image": spec, "params": params, "precision": precision, "backend": backend,
            "runs": RUNS}
    row = {"job": job, "image": spec, "backend": backend, "precision": precision}
    try:
        result = run_side(task, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**row, "error": f"stopped after {timeout:.0f} s, the time budget left"}
    except Exception as failure:  # noqa: BLE001  one failed side is a row that says so, not a lost table
        said = str(failure).strip().splitlines() or [repr(failure)]
        return {**row, "error": said[-1][:300]}  # the last line: the exception's own
    first, warm = result["runs"][0], result["runs"][-1]
    return {**row, "device": result["device"], "precision": result["precision"], "load_s": result["load_s"],
            "first_s": first["seconds"], "warm_s": warm["seconds"],
            "pixel_steps": engine_pixel_steps(result["octaves"], params),
            "layout": "; ".join(f"{o['size']} in {o['tiles']}" for o in result["octaves"]),
            "device_peak_mib": result["device_peak_mib"], "peak_rss_mib": result["peak_rss_mib"],
            "tensorflow_loaded": result["tensorflow_loaded"]}


def markdown(results, reference):
    rate = seed_loop_rate(reference)
    lines = [f"GPU benchmark{' (--quick: a smoke run, not figures)' if results['quick'] else ''}: "
             f"{results['machine']['gpu']}; Keras backends present: {', '.join(results['backends']) or 'none'}",
             "",
             "| job | backend | precision | device | first run s | warm s | x reference loop, warm "
             "| x reference loop, first | GPU peak MiB | load s |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in results["rows"]:
        if "error" in row:
            lines.append(f"| {row['job']} | {row['backend']} | {row['precision']} | failed: {row['error']} "
                         "| | | | | | |")
            continue
        peak = f"{row['device_peak_mib']:.0f}" if row["device_peak_mib"] else "-"
        warm, first = (row["pixel_steps"] / row[seconds] / rate for seconds in ("warm_s", "first_s"))
        lines.append(f"| {row['job']} | {row['backend']} | {row['precision']} | {row['device']} "
                     f"| {row['first_s']:.2f} | {row['warm_s']:.2f} "
                     f"| {warm:.1f}x | {first:.1f}x "
                     f"| {peak} | {row['load_s']:.1f} |")
    measured = [row for row in results["rows"] if "error" not in row]
    lines += ["",
              f"- x reference loop: image pixels x steps per second against the reference loop (the article's, "
              f"float32, TensorFlow) on {reference['cpu']}: {reference['seed_loop_seconds']} s for its job "
              f"({reference['measured']}). On the reference job this is the ratio of seconds.",
              f"- The project's engine on that CPU: {reference['engine_12mp']}.",
              "- First run: the image's first dream in a process that compiled only the warm-up's size; the "
              "difference to the warm run is mostly compiling each octave size (JAX compiles per shape).",
              "- Weights: random (seeded), the same network as ImageNet's weights run.",
              f"- TensorFlow importable here: {results['tensorflow_importable']}."]
    if measured:
        loaded = [f"{r['job']} {r['backend']} {r['precision']}" for r in measured if r["tensorflow_loaded"]]
        lines += [f"- TensorFlow loaded in: {', '.join(loaded) or 'no side'}.",
                  "- Octave layouts (octave in tiles): "
                  + " | ".join(sorted({f"{r['job']}: {r['layout']}" for r in measured}))]
    lines.append(f"- Wall time: {results['wall_s']:.0f} s.")
    if results["skipped"]:
        lines.append("- Not run (time budget spent): " + ", ".join(results["skipped"]))
    return "\n".join(lines) + "\n"


def save(results, reference, out, started):
    """Write the table and the figures as they stand; the table's text."""
    results["wall_s"] = time.monotonic() - started
    table = markdown(results, reference)
    (out / "gpu-bench.md").write_text(table)
    (out / "gpu-bench.json").write_text(json.dumps(results, indent=2))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny jobs: proves the path (a CPU will do)")
    parser.add_argument("--backend", action="append", choices=BACKENDS,
                        help="a backend to measure (repeatable; default: every one importable)")
    parser.add_argument("--precision", action="append", choices=PRECISIONS,
                        help="a precision to measure (repeatable; default: float16 and float32)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "bench/out/gpu",
                        help="folder for gpu-bench.md and gpu-bench.json (default: $OUT, else bench/out/gpu)")
    parser.add_argument("--budget-s", type=float, default=540.0,
                        help="stop starting new rows after this many seconds (default 540)")
    args = parser.parse_args(argv)

    reference = json.loads(REFERENCE.read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    backends = args.backend or present_backends()
    results = {"machine": machine(), "quick": args.quick, "backends": backends, "rows": [], "skipped": [],
               "tensorflow_importable": "yes" if importlib.util.find_spec("tensorflow") else "no",
               "reference": reference, "wall_s": 0.0}
    print(f"Machine: {results['machine']}; backends: {backends or 'none'}", flush=True)
    started = time.monotonic()
    for backend in backends:
        for job, spec, params in jobs(args.quick):
            for precision in args.precision or PRECISIONS:
                left = args.budget_s - (time.monotonic() - started)
                if left < 10:
                    results["skipped"].append(f"{job} {backend} {precision}")
                    continue
                row = measure(job, spec, params, backend, precision, timeout=left)
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
                save(results, reference, out, started)
    print("\n" + save(results, reference, out, started), flush=True)
    return 0 if backends and all("error" not in row for row in results["rows"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
