"""python -m bench [--quick] [--job seed|levers|12mp|24mp|4000x3000|overlap|dream-size|distinct-sizes|all]
[--precision P] [--sizes N] [--json OUT] [--crops DIR]

Every side of a comparison runs in this same run, one after the other (never
side by side: they would share the cores), each in its own process so that its
peak memory is its own. On a shared machine absolute seconds drift with the
load; the ratios measured in one run are the figures to quote, with the load."""

import argparse
import json
import os
import tempfile
import time

import numpy as np

from deepdream_common.vocabulary import PRECISIONS

from . import report
from .daemon_side import WarmDaemon
from .jobs import CLASSIC, GFLOP_PER_PIXEL_STEP, engine_pixel_steps, make_image, psnr, seed_job
from .sides import run_side

DREAM_SIZES_MP = (1.0, 2.0, 4.0)

JOBS = ("seed", "levers", "12mp", "24mp", "4000x3000", "overlap", "dream-size", "distinct-sizes")


def load_average():
    return os.getloadavg()[0]


def seed_comparison(args, out):
    """The reference job: the article's loop against a warm daemon, in rounds that
    alternate which side goes first (this machine's speed drifts by a third
    over minutes: a ratio is only fair between runs taken close together; the
    median round is the figure), then the engine in-process at auto precision
    and at float32 for the quality of the fast path."""
    steps = 3 if args.quick else 50
    rounds = 1 if args.quick else args.rounds
    job = seed_job(steps)
    params = seed_params(job, args)
    details = {"octave_shapes": job["shapes"], "params": params, "load_before": load_average()}

    seeds, daemons = [], []
    for number in range(rounds):
        sides = [lambda: seeds.append(run_side({"side": "seed", "steps": steps, "out": out})),
                 lambda: daemons.append(daemon_side(job["project_image"], params, args.precision))]
        for side in sides if number % 2 == 0 else sides[::-1]:
            side()
    ratios = [seed["seconds"] / daemon["seconds"] for seed, daemon in zip(seeds, daemons)]
    details["rounds"] = [f"reference {seed['seconds']:.1f} s, daemon {daemon['seconds']:.1f} s: {ratio:.2f}x"
                         for seed, daemon, ratio in zip(seeds, daemons, ratios)]
    seed, daemon = median_run(seeds), median_run(daemons)
    rows = [_row("seed", "reference loop (article)", "float32", seed, job["pixel_steps"], seed),
            {**_row("seed", "deepdream-daemon, warm", daemon["precision"], daemon, job["pixel_steps"], seed),
             "ratio": float(np.median(ratios)), "cpu_ratio": float(np.median(
                 [s["cpu_s"] / d["cpu_s"] for s, d in zip(seeds, daemons)]))}]
    details["daemon_device"] = daemon["device"]
    details["daemon_precision"] = daemon["precision"]

    fast = run_side({"side": "engine", "name": "engine-auto", "image": "seed-job", "params": params,
                     "precision": "auto", "out": out})
    rows.append(_row("seed", "engine in-process", fast["precision"], fast, job["pixel_steps"], seed))
    exact = run_side({"side": "engine", "name": "engine-float32", "image": "seed-job", "params": params,
                      "precision": "float32", "out": out})
    rows.append(_row("seed", "engine in-process", "float32", exact, job["pixel_steps"], seed))

    details["load_after"] = load_average()
    details["wire_and_queue_s"] = daemon["seconds"] - (daemon["daemon_stats_seconds"] or daemon["seconds"])
    details["quality"] = report.quality(np.load(f"{out}/engine-auto.npy"), np.load(f"{out}/engine-float32.npy"),
                                        fast["step_losses"], exact["step_losses"])
    # the in-process run at the daemon's precision
    same = "engine-float32" if daemon["precision"] == "float32" else "engine-auto"
    details["daemon_equals_in_process"] = all(np.array_equal(run["dreamed"], np.load(f"{out}/{same}.npy"))
                                              for run in daemons)
    details["seed_loss_per_octave"] = seed["octave_losses"]
    return rows, details


def seed_params(job, args):
    """The reference job in the project's parameters; the tile size is the project's default
    (automatic: one piece at 845x562) unless --seed-tile asks for one."""
    return {**job["params"], **({"tile_size": args.seed_tile} if args.seed_tile else {})}


def daemon_side(image, params, precision="auto"):
    """One dream through a freshly started deepdream-daemon (at `precision`),
    timed from "ready": the model is loaded and traced, but the octave sizes
    are new to it, as they are to the reference loop in its own fresh process."""
    daemon = WarmDaemon(precision=precision)
    try:
        dreamed, seconds, _, stats = daemon.dream(image, params)
        result = {"seconds": seconds, "cpu_s": daemon.last_cpu_s, "load_s": daemon.ready_s,
                  "peak_rss_mib": daemon.peak_rss_mib(), "daemon_stats_seconds": stats.get("seconds"),
                  "precision": daemon.pong.get("precision"), "device": daemon.pong.get("device"),
                  "dreamed": dreamed}
    finally:
        daemon.stop()
    return result


def median_run(runs):
    """The run with the median seconds (the upper middle of an even count), its
    peak memory the highest of all runs."""
    chosen = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
    return {**chosen, "peak_rss_mib": max(run["peak_rss_mib"] for run in runs)}


def levers(args, out):
    """What each speed lever gives on the reference job, engine in-process, and
    how far each moves the picture from the exact float32 graph. Folding BN in
    float32 changes nothing but rounding: its PSNR is the yardstick for how
    much gradient ascent amplifies rounding alone."""
    steps = 3 if args.quick else 50
    job = seed_job(steps)
    params = seed_params(job, args)
    variants = [("float32", False), ("float32", True), ("bfloat16", False), ("bfloat16", True)]
    rows, details = [], {"ratio_is_against": "the first row (float32, BN kept)", "load_before": load_average()}
    reference = None
    for precision, fold in variants:
        name = f"{precision}-{'folded' if fold else 'kept'}"
        result = run_side({"side": "engine", "name": name, "image": "seed-job", "params": params,
                           "precision": precision, "fold_batch_norm": fold, "out": out})
        reference = reference or result
        rows.append(_row("levers", f"engine, BN {'folded' if fold else 'kept'}", precision, result,
                         job["pixel_steps"], reference))
        if rows[1:]:
            details[f"psnr_db {name} vs float32-kept"] = psnr(np.load(f"{out}/{name}.npy"),
                                                              np.load(f"{out}/float32-kept.npy"))
    details["load_after"] = load_average()
    return rows, details


def photo_job(name, spec, params, args, label, write_png=False):
    """A large photo dreamed in-process: seconds, peak RSS, and the work per
    step: the network pixels each octave's tiles compute against the image's
    (overlap and padding are the difference; at most 1.15x is the goal); with
    `write_png`, the seconds and MiB of writing the result as the CLI does and
    at Pillow's default level, apart from the dream's seconds."""
    load = load_average()
    result = run_side({"side": "engine", "image": spec, "params": params, "precision": args.precision,
                       "write_png": write_png})
    octaves = result["octaves"]
    details = {"load_before": load, "load_after": load_average(), "memory_budget_mib": result["memory_budget_mib"],
               **{key: value for key, value in result.items() if key.startswith("png_")},
               "work_per_step": sum(o["network_px"] for o in octaves) / sum(o["image_px"] for o in octaves),
               "work_per_step_full_size": octaves[-1]["network_px"] / octaves[-1]["image_px"],
               "octaves": "; ".join(f"{o['size']} in {o['tiles']} x {o['tile']}" for o in octaves)}
    return [_row(name, f"engine, {spec}, {label}",
                 result["precision"], result, engine_pixel_steps(octaves, params), None)], details


def twelve_mp(args, out):
    """A 12 MP photo (4000x3000) at the plug-in's Classic preset, tiles automatic."""
    return photo_job("12mp", "1000x750x3" if args.quick else "4000x3000x3",
                     {**CLASSIC, "octaves": 2, "steps": 2} if args.quick else CLASSIC, args, "Classic preset")


def big_photo(args, out):
    """A 24 MP photo (6000x4000) at the default params; the result's PNG write timed apart."""
    if args.quick:
        return photo_job("24mp", "1500x1000x3", {"octaves": 2, "steps": 2}, args, "2 octaves x 2 steps", True)
    return photo_job("24mp", "6000x4000x3", {}, args, "default params", True)


def tile_memory(args, out):
    """A 4000x3000 RGBA image: peak memory follows the tile size, not the image."""
    spec = "1000x750x4" if args.quick else "4000x3000x4"
    rows = []
    for tile in (256, 512, 1024):
        params = {"octaves": 1, "steps": 1 if args.quick else 2, "tile_size": tile}
        result = run_side({"side": "engine", "image": spec, "params": params, "precision": "auto"})
        rows.append(_row("4000x3000", f"engine, {spec}, tile {tile}", result["precision"], result,
                         engine_pixel_steps(result["octaves"], params), None))
    return rows, {"load": load_average()}


def overlap(args, out):
    """Seam visibility, agreement with the untiled dream and work, by tile overlap (bench/overlap.py)."""
    from . import overlap as measured

    result = run_side({"side": "overlap", "quick": args.quick})
    print(measured.markdown(result), flush=True)
    return [], {"precision": result["precision"], "work_12mp": result["work_12mp"], "load": load_average()}


def dream_size(args, out):
    """A 24 MP photo at the Classic preset dreamed at full size and at dream
    sizes of 1, 2 and 4 MP, against a 1 MP photo dreamed directly: what a
    dream size saves in seconds and memory (ratios: against full size). With
    --crops, each result's centre (what a viewer shows at 100 %) and a
    thumbnail of the whole are written there as PNG, to judge how they look."""
    spec, direct, sizes = ("1500x1000x3", "612x408x3", (0.25, 0.5, 1.0)) if args.quick else \
        ("6000x4000x3", "1224x816x3", DREAM_SIZES_MP)  # 1224x816: what dream size 1 dreams a 6000x4000 photo at
    params = {**CLASSIC, "octaves": 2, "steps": 2} if args.quick else CLASSIC
    sides = [("full size", spec, params)] + [(f"dream size {size:g} MP", spec, {**params, "dream_size": size})
                                             for size in sizes] + [("directly", direct, params)]
    details, results = {"load_before": load_average()}, {}
    if args.crops:
        report.save_views(make_image(spec), args.crops, "input")
    # The long full-size dream goes last, and each side says its figures as it ends:
    # on a busy machine the others are known even if that one is cut short.
    for number, (label, image, side_params) in reversed(list(enumerate(sides))):
        name = f"dream-size-{number}"
        result = run_side({"side": "engine", "image": image, "params": side_params, "precision": args.precision,
                           "name": name, "out": out})
        results[number] = result
        print(f"{image}, {label}: {result['seconds']:.1f} s ({result['cpu_s']:.0f} CPU s), peak RSS "
              f"{result['peak_rss_mib']:.0f} MiB, load {load_average():.1f}", flush=True)
        details[f"octaves, {label}"] = "; ".join(octave["size"] for octave in result["octaves"])
        if args.crops:
            report.save_views(np.load(f"{out}/{name}.npy"), args.crops, f"{number}-{label.replace(' ', '-')}")
    rows = [_row("dream-size", f"engine, {image}, {label}", results[number]["precision"], results[number],
                 engine_pixel_steps(results[number]["octaves"], side_params), results[0])
            for number, (label, image, side_params) in enumerate(sides)]
    details["load_after"] = load_average()
    return rows, details


def distinct_sizes(args, out):
    """A warm daemon through --sizes distinct image sizes (--quick: 100), its RSS every 50 dreams, as shipped
    and without giving the heap's freed pages back (bench/distinct_sizes.py)."""
    from . import distinct_sizes as measured

    load = load_average()
    results = measured.measure(100 if args.quick else args.sizes, precision=args.precision)
    print(measured.markdown(results), flush=True)
    return [], {"load_before": load, "load_after": load_average(), **measured.summary(results)}


RUNNERS = {"seed": seed_comparison, "levers": levers, "12mp": twelve_mp, "24mp": big_photo, "4000x3000": tile_memory,
           "overlap": overlap, "dream-size": dream_size, "distinct-sizes": distinct_sizes}


def _row(job, side, precision, result, pixel_steps, reference):
    """One table row; `reference` is the result the ratios are taken against (the reference's)."""
    return {"job": job, "side": side, "precision": precision, "seconds": result["seconds"],
            "cpu_s": result.get("cpu_s"),
            "ratio": (reference["seconds"] / result["seconds"]) if reference else None,
            "cpu_ratio": (reference["cpu_s"] / result["cpu_s"]) if reference else None,
            "gflops": GFLOP_PER_PIXEL_STEP * pixel_steps / result["seconds"],
            "load_s": result.get("load_s"), "rss_before_mib": result.get("rss_before_mib"),
            "peak_rss_mib": result["peak_rss_mib"]}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--job", choices=JOBS + ("all",), default="seed")
    parser.add_argument("--quick", action="store_true", help="a small smoke version of each job (seconds, not minutes)")
    parser.add_argument("--seed-tile", type=int, default=0,
                        help="tile_size for the project on the reference job and levers (default 0: the project's "
                             "default, automatic; 845x562 fits one piece)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="the daemon's precision on the reference and distinct-sizes jobs, the engine's on 12mp "
                             "and 24mp (default auto; float32 is what a CPU without bfloat16, such as an AVX2 one, "
                             "runs)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="seed job: reference-loop / daemon pairs, alternating which goes first (default 3; "
                             "--quick runs 1)")
    parser.add_argument("--sizes", type=int, default=1000,
                        help="distinct-sizes job: how many distinct image sizes each daemon dreams (default 1000)")
    parser.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    parser.add_argument("--crops", metavar="DIR",
                        help="dream-size job: also write each result's 800x600 centre and a thumbnail as PNG here")
    args = parser.parse_args(argv)

    jobs = JOBS if args.job == "all" else (args.job,)
    results = {"machine": report.machine(), "quick": args.quick, "jobs": {}}
    print("Machine: " + ", ".join(f"{key} {value}" for key, value in results["machine"].items()) + "\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as out:
        for name in jobs:
            started = time.perf_counter()
            rows, details = RUNNERS[name](args, out)
            details["wall_s"] = time.perf_counter() - started
            results["jobs"][name] = {"rows": rows, "details": details}
            print(report.markdown(name, rows, details), flush=True)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)
    return 0
