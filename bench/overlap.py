"""How much tile overlap a seamless dream needs: seam visibility and agreement
with the untiled dream, against the network work each overlap costs.

For each overlap (0: the random roll alone, as the TensorFlow tutorial; 1/16,
1/8, 1/4 of the tile) the same image is dreamed untiled and in tiles, and
compared: the correlation of the tiled dream's change with the untiled one's
(one step: the gradients themselves; several steps: the dream), and the seam
figure of tests/test_engine.py, the largest jump between neighbouring columns
or rows at a tile border over the median jump (with jitter the borders move
every step, so there it is the largest jump anywhere over the median)."""

import numpy as np

from dream_engine import tiling

from .photo import photo

# (share of the tile, least pixels): the shares alone, then what the engine ships.
VARIANTS = ((0.0, 0), (1 / 16, 0), (1 / 8, 0), (1 / 4, 0), (tiling.OVERLAP, tiling.MIN_OVERLAP_PX))
# (name, image spec, params, tile_size): the test's case, and the reference-sized image
# at the project's default steps in 4-6 tiles, without and with the roll.
CASES = (
    ("test 420x300, 1 step, jitter 0", (420, 300), dict(octaves=1, steps=1, jitter=0, step_size=0.05), 160),
    ("test 420x300, 4 steps, jitter 0", (420, 300), dict(octaves=1, steps=4, jitter=0, step_size=0.05), 160),
    ("845x562, 20 steps, jitter 0", (845, 562), dict(octaves=1, steps=20, jitter=0), 320),
    ("845x562, 20 steps, jitter 32", (845, 562), dict(octaves=1, steps=20, jitter=32), 320),
)
QUICK_CASES = (CASES[0], ("845x562, 3 steps, jitter 32", (845, 562), dict(octaves=1, steps=3, jitter=32), 320))


def seam_ratio(change, layout, anywhere):
    """Largest jump at a tile border (or anywhere) over the median jump, both axes."""
    worst = 0.0
    for axis, starts, tile in ((1, {x for _, x in layout.origins}, layout.tile_width),
                               (0, {y for y, _ in layout.origins}, layout.tile_height)):
        jumps = np.abs(np.diff(change, axis=axis)).mean(axis=(1 - axis, 2))
        borders = [s - 1 for s in starts if s > 0] + [s + tile - 1 for s in starts]
        borders = range(len(jumps)) if anywhere else [b for b in borders if 0 <= b < len(jumps)]
        worst = max(worst, max(jumps[b] for b in borders) / np.median(jumps))
    return float(worst)


def measure(quick=False, precision="float32", variants=VARIANTS):
    from dream_engine import DreamEngine, DreamParams

    engine = DreamEngine(weights="random", precision=precision)
    rows = []
    for name, spec, params, tile_size in QUICK_CASES if quick else CASES:
        image = photo(*spec, seed=3)
        original = image.astype(np.float32)
        untiled = engine.dream(image, DreamParams(tile_size=4096, **params)).astype(np.float32) - original
        untiled_seams = seam_ratio(untiled, engine.tile_layout(image.shape[:2], DreamParams(tile_size=tile_size)),
                                   params["jitter"] > 0)
        for overlap, least in variants:
            engine.tile_overlap, tiling.MIN_OVERLAP_PX = overlap, least  # the module's floor, read at each layout
            tiled_params = DreamParams(tile_size=tile_size, **params)
            layout = engine.tile_layout(image.shape[:2], tiled_params)
            change = engine.dream(image, tiled_params).astype(np.float32) - original
            rows.append({"case": name, "overlap": overlap, "least_px": least, "tiles": len(layout),
                         "tile": f"{layout.tile_width}x{layout.tile_height}",
                         "work": layout.network_pixels / (image.shape[0] * image.shape[1]),
                         "correlation": float(np.corrcoef(untiled.ravel(), change.ravel())[0, 1]),
                         "seam_ratio": seam_ratio(change, layout, params["jitter"] > 0),
                         "untiled_seam_ratio": untiled_seams})
    return {"precision": engine.precision, "rows": rows, "work_12mp": work_at_12mp(engine, variants)}


def work_at_12mp(engine, variants):
    """Network pixels per image pixel at 4000x3000 under the engine's budget, for each overlap."""
    from dream_engine import DreamParams

    work = {}
    for overlap, least in variants:
        engine.tile_overlap, tiling.MIN_OVERLAP_PX = overlap, least
        layout = engine.tile_layout((3000, 4000), DreamParams())
        work[f"{overlap:.4g}, at least {least} px"] = round(layout.network_pixels / 12e6, 3)
    return work


def markdown(result):
    lines = [f"precision {result['precision']}", "",
             "| case | overlap | least px | tiles | tile | network px / image px | correlation with untiled "
             "| seam ratio (untiled) |", "|---|---:|---:|---:|---|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['case']} | {row['overlap']:.4g} | {row['least_px']} | {row['tiles']} | {row['tile']} "
                     f"| {row['work']:.3f} | {row['correlation']:.4f} "
                     f"| {row['seam_ratio']:.2f} ({row['untiled_seam_ratio']:.2f}) |")
    lines.append("")
    lines.append(f"Work at 4000x3000 under the default budget, by overlap: {result['work_12mp']}")
    return "\n".join(lines)
