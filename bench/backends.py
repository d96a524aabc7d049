"""Keras's backends side by side (issue 15): the same dream on TensorFlow, JAX
and PyTorch, each in a process of its own (Keras's backend is process-wide).

    .venv/bin/python -m bench.backends [--backends tensorflow,jax,torch] [--steps 4]

Prints per backend the step time at 845x562 in float32 and bfloat16 (the
first step apart: on JAX it compiles for the new shape), and how far a short
float32 dream is from TensorFlow's on the same weights file, in levels of 255.
tests/test_backends.py runs the same agreement dream through run_worker()."""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .jobs import make_image

# Short enough that float rounding has not yet been amplified into different
# dreams (tests/test_engine.py: the reference agrees with itself within 2 levels after
# 3 steps of 0.05), long enough to visit both strategies and the roll. One
# octave: at the odd sizes of a smaller octave (115x153) the backends' networks
# already differ by several levels (bench/README.md, "Backends").
AGREEMENT_IMAGE = "200x150x3"
AGREEMENT_DREAMS = {
    "whole": {"octaves": 1, "steps": 3, "step_size": 0.05, "jitter": 8, "seed": 1},
    "two octaves": {"octaves": 2, "steps": 3, "step_size": 0.05, "jitter": 8, "seed": 1},
    "tiled": {"octaves": 1, "steps": 3, "step_size": 0.05, "jitter": 8, "seed": 1, "tile_size": 128},
    # The controls together, the first octave whole and the second in tiles: a guide, two layers' channels, the
    # Laplacian normalization.
    "guided": {"octaves": 2, "steps": 2, "tile_size": 160, "layers": {"mixed3[17,200]": 1.0, "mixed4": 0.5},
               "normalize": "laplacian"},
}
AGREEMENT_GUIDES = {"guided": "100x90x3"}  # the dreams that have a guide image
STEP_IMAGE = "845x562x3"  # the reference article's photo size
WORKER_TIMEOUT_S = 1800  # JAX compiles each new shape for tens of seconds on 2 busy cores


def run_worker(backend, job, weights, out=None, without_tensorflow=False, timeout=WORKER_TIMEOUT_S):
    """Run `job` on `backend` in a fresh interpreter; returns what it reports
    (a dict). `without_tensorflow` makes TensorFlow unimportable there, as on
    a machine that never installed it."""
    command = [sys.executable, "-m", "bench.backends", "--worker", backend, job, str(weights), str(out or "")]
    if without_tensorflow:
        command.append("--without-tensorflow")
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                            cwd=Path(__file__).resolve().parent.parent)
    if result.returncode != 0:
        raise RuntimeError(f"{job} on {backend} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def guide(name):
    """The guide image of the agreement dream `name`, or None."""
    return make_image(AGREEMENT_GUIDES[name]) if name in AGREEMENT_GUIDES else None


def largest_difference(a, b):
    """The largest difference between two uint8 dreams, in levels."""
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def _worker(backend, job, weights, out, without_tensorflow):
    if without_tensorflow:
        # As if not installed: `import tensorflow` raises ModuleNotFoundError and
        # importlib.util.find_spec says None (PyTorch asks it whether TensorFlow is there).
        sys.modules["tensorflow"] = None
    from dream_engine import startup

    startup.use_backend(backend)
    startup.load_quietly()
    if job == "weights":
        return _save_random_weights(weights)
    from dream_engine import DreamEngine, DreamParams

    if job == "agreement":
        engine = DreamEngine(weights=weights, precision="float32")
        image = make_image(AGREEMENT_IMAGE)
        dreams = {name: engine.dream(image, DreamParams(**params), guide=guide(name))
                  for name, params in AGREEMENT_DREAMS.items()}
        np.savez(out, **dreams)
        return {"backend": engine.backend, "device": engine.device, "precision": engine.precision,
                "tensorflow_loaded": sys.modules.get("tensorflow") is not None}
    if job == "steps":
        return {precision: _step_times(DreamEngine(weights=weights, precision=precision), DreamParams)
                for precision in ("float32", "bfloat16")}
    raise ValueError(f"unknown job {job!r}")


def _save_random_weights(path):
    """The engine's --weights random network, as a file every backend can load."""
    from dream_engine import DreamEngine

    DreamEngine(weights="random", precision="float32")._base.save_weights(path)
    return {"weights": str(path)}


def _step_times(engine, params_type, steps=4):
    image = make_image(STEP_IMAGE)
    started = time.monotonic()
    stamps = []
    engine.dream(image, params_type(octaves=1, steps=steps), progress=lambda event: stamps.append(time.monotonic()))
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    return {"first_step_s": round(stamps[0] - started, 2), "step_s": round(statistics.median(gaps), 3),
            "steps_s": [round(gap, 3) for gap in gaps], "batch_norm_folded": engine.batch_norm_folded}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--worker", nargs=4, metavar=("BACKEND", "JOB", "WEIGHTS", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--without-tensorflow", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(*args.worker, args.without_tensorflow)))
        return 0
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "inception.weights.h5"
        run_worker("tensorflow", "weights", weights)
        dreams = {}
        for backend in backends:
            out = Path(folder) / f"{backend}.npz"
            about = run_worker(backend, "agreement", weights, out)
            dreams[backend] = dict(np.load(out))
            print(json.dumps({"backend": backend, **about}), flush=True)
        for backend in backends:
            if backend != "tensorflow" and "tensorflow" in dreams:
                differences = {name: largest_difference(dream, dreams["tensorflow"][name])
                               for name, dream in dreams[backend].items()}
                print(json.dumps({"backend": backend, "largest_difference_from_tensorflow": differences}), flush=True)
        for backend in backends:
            print(json.dumps({"backend": backend, "steps_845x562": run_worker(backend, "steps", weights)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
