"""One side of a comparison, run in its own process so that its peak memory
is its own: `python -m bench.sides '<json task>'` prints one result line.

Tasks: {"side": "seed", "steps": N, "out": DIR} runs the article's loop;
{"side": "engine", "image": SPEC, "params": {...}, "precision": P, "out": DIR}
runs dream_engine in-process, warm (load and first trace are timed apart);
"backend": NAME picks the Keras backend, "runs": N dreams the image N times
(the first pays for compiling its sizes where the backend compiles per shape).
run_side(task) is the parent's side: it starts such a process."""

import json
import os
import subprocess
import sys
import time

import numpy as np

from . import memory
from .jobs import make_image, seed_job

RESULT_MARK = "BENCH_RESULT "


def run_side(task, timeout=None):
    """Run one side in a fresh process; its result dict."""
    completed = subprocess.run([sys.executable, "-m", "bench.sides", json.dumps(task)],
                               capture_output=True, text=True, timeout=timeout)
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    raise RuntimeError(f"bench side {task['side']} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")


def run_seed(task):
    from . import seed_reference

    job = seed_job(task["steps"])
    started = time.perf_counter()
    deepdream = seed_reference.DeepDream(seed_reference.build_dream_model())
    seed_reference.warm_up(deepdream)
    load_s = time.perf_counter() - started
    memory.reset_peak()
    losses = []
    cpu_started, started = memory.cpu_seconds(), time.perf_counter()
    dreamed = seed_reference.octave_dream(deepdream, job["seed_image"], task["steps"], losses)
    seconds, cpu_s = time.perf_counter() - started, memory.cpu_seconds() - cpu_started
    _save(task, "seed", dreamed)
    return {"seconds": seconds, "cpu_s": cpu_s, "load_s": load_s, "octave_losses": losses, "shape": list(dreamed.shape),
            "peak_rss_mib": memory.peak_rss_mib()}


def run_engine(task):
    if task.get("backend"):
        from dream_engine import startup

        startup.use_backend(task["backend"])  # before Keras loads: it fixes its backend at import
    from dream_engine import DreamEngine, DreamParams

    started = time.perf_counter()
    engine = DreamEngine(weights="random", precision=task.get("precision", "auto"),
                         tile_batch=task.get("tile_batch", 1), fold_batch_norm=task.get("fold_batch_norm"))
    params = DreamParams.from_dict(task.get("params", {}))
    engine.warm_up(params.layers)  # what the daemon does before it says "ready"
    load_s = time.perf_counter() - started
    image = make_image(task["image"])
    rss_before = memory.rss_mib()
    memory.reset_peak()
    runs = []
    for _ in range(task.get("runs", 1)):
        losses = []
        cpu_started, started, compiled = memory.cpu_seconds(), time.perf_counter(), engine.compile_seconds
        dreamed = engine.dream(image, params, progress=lambda event, losses=losses: losses.append(event["loss"]))
        runs.append({"seconds": time.perf_counter() - started, "cpu_s": memory.cpu_seconds() - cpu_started,
                     "compile_s": engine.compile_seconds - compiled, "losses": losses})
    _save(task, task.get("name", "engine"), dreamed)
    written = png_writes(dreamed) if task.get("write_png") else {}
    return {**written, "seconds": runs[0]["seconds"], "cpu_s": runs[0]["cpu_s"], "load_s": load_s,
            "step_losses": runs[0]["losses"], "shape": list(dreamed.shape),
            "precision": engine.precision, "batch_norm_folded": engine.batch_norm_folded,
            "rss_before_mib": rss_before, "peak_rss_mib": memory.peak_rss_mib(),
            "memory_budget_mib": engine.memory_budget_mib, "octaves": octave_work(engine, image, params),
            "runs": [{key: value for key, value in run.items() if key != "losses"} for run in runs],
            "backend": getattr(engine, "backend", "tensorflow"), "device": engine.device,
            "device_peak_mib": memory.device_peak_mib(), "tensorflow_loaded": "tensorflow" in sys.modules}


def png_writes(dreamed):
    """The dream written as PNG the way the CLI writes it (image_files.write_image, with its metadata), then
    with Pillow's default level (6) in place of the large-PNG level: seconds and MiB of each."""
    import tempfile

    from deepdream_client import image_files

    shipped = image_files.LARGE_PNG_LEVEL
    large = dreamed.shape[0] * dreamed.shape[1] >= image_files.LARGE_PNG_PIXELS
    figures = {"png_level shipped": shipped if large else 6}
    with tempfile.TemporaryDirectory(prefix="bench-png-") as folder:
        for label, level in (("shipped", shipped), ("level 6", 6)):
            path = f"{folder}/{label}.png"
            image_files.LARGE_PNG_LEVEL = level
            try:
                started = time.perf_counter()
                image_files.write_image(path, dreamed, {"bench": label})
                figures[f"png_write_s {label}"] = time.perf_counter() - started
            finally:
                image_files.LARGE_PNG_LEVEL = shipped
            figures[f"png_mib {label}"] = os.path.getsize(path) / 2**20
    return figures


def octave_work(engine, image, params):
    """Each octave's size, tile count and tile, and the network pixels one of its steps computes."""
    from dream_engine.engine import dream_shape, octave_shapes
    from deepdream_common.vocabulary import MIN_SIDE

    work = []
    dreamed = dream_shape(image.shape[:2], params.dream_size) or image.shape[:2]  # what the network works at
    for shape in octave_shapes(dreamed, params.octaves, params.octave_scale, MIN_SIDE):
        layout = engine.tile_layout(shape, params)
        work.append({"size": f"{shape[1]}x{shape[0]}", "image_px": shape[0] * shape[1], "tiles": len(layout),
                     "tile": f"{layout.tile_width}x{layout.tile_height}", "network_px": layout.network_pixels})
    return work


def _save(task, name, image):
    if task.get("out"):
        np.save(f"{task['out']}/{name}.npy", image)


def run_overlap(task):
    from . import overlap

    return overlap.measure(task.get("quick", False))


SIDES = {"seed": run_seed, "engine": run_engine, "overlap": run_overlap}


def main():
    task = json.loads(sys.argv[1])
    result = SIDES[task["side"]](task)
    print(RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
