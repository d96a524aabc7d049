"""The jobs the benchmark runs, described without TensorFlow (the parent
process stays light: only the processes doing the work load the model)."""

import numpy as np
from deepdream_common.vocabulary import AUTOMATIC_TILES, PARAMS, PRESETS

from .photo import large_photo, seed_job_image, upscaled

OCTAVE_SCALE = 1.30
SEED_OCTAVES = 5  # the article's n in range(-2, 3)
SEED_STEPS = 50
SEED_STEP_SIZE = 0.01
# The plug-in's Classic preset, its tile size left at 0 (automatic): the 12 MP job's parameters.
CLASSIC = {**PRESETS["classic"][1], "tile_size": AUTOMATIC_TILES}

# docs/design.md section 4: InceptionV3 up to mixed5, forward + input gradient, is
# about 44 GFLOP at 512x512; convolutions scale with the pixel count.
GFLOP_PER_PIXEL_STEP = 44.0 / (512 * 512)


def seed_octave_shapes(image, octaves=SEED_OCTAVES):
    """The sizes the article's loop visits: base * 1.3**n in float32, truncated."""
    base = np.array(image.shape[:2], np.float32)
    low = -(octaves // 2)
    return [tuple(int(v) for v in (base * np.float32(OCTAVE_SCALE**n)).astype(np.int32))
            for n in range(low, low + octaves)]


def seed_job(steps=SEED_STEPS):
    """The reference job, and the same job for the project: the image at the
    reference's last octave size, dreamed over the same number of octaves."""
    source = seed_job_image()
    shapes = seed_octave_shapes(source)
    height, width = shapes[-1]
    return {
        "seed_image": source,
        "project_image": upscaled(source, width, height),
        "params": {"octaves": SEED_OCTAVES, "octave_scale": OCTAVE_SCALE, "steps": steps,
                   "step_size": SEED_STEP_SIZE, "layers": {"mixed2": 1.0, "mixed5": 1.0}},
        "shapes": shapes,
        "pixel_steps": steps * sum(h * w for h, w in shapes),
    }


def make_image(spec):
    """A named test image: "seed-job" or "WIDTHxHEIGHTxCHANNELS"."""
    if spec == "seed-job":
        return seed_job()["project_image"]
    width, height, channels = (int(v) for v in spec.split("x"))
    return large_photo(width, height, channels)


def engine_pixel_steps(octaves, params):
    """Image pixels the engine's octaves visit times steps (tile overlap not
    counted: the useful work, the same measure as the reference's). `octaves`: the
    engine side's own account of them (sides.octave_work: the engine's
    octave_shapes, minimum side included); steps left out are the engine's default."""
    return params.get("steps", PARAMS["steps"].default) * sum(octave["image_px"] for octave in octaves)


def psnr(a, b):
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))
