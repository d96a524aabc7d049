"""Figures as Markdown, and the fast path's quality against float32."""

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from .jobs import psnr


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        from importlib.metadata import version
        tf_version = version("tensorflow")
    except Exception:  # noqa: BLE001  a missing figure, not a failed bench
        tf_version = "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": _gpu_names(), "python": platform.python_version(),
            "tensorflow": tf_version}


def _gpu_names():
    """The CUDA cards, from nvidia-smi (this process stays free of TensorFlow);
    the daemon's own report of the device it dreams on is in the reference job's details."""
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    names = [line.strip() for line in listed.stdout.splitlines() if line.strip()]
    return ", ".join(names) if listed.returncode == 0 and names else "none"


def quality(fast, exact, fast_losses, exact_losses):
    """PSNR of the fast dream against the float32 one, and how far the loss
    trajectories part (relative to float32's loss at each step)."""
    fast_losses, exact_losses = np.array(fast_losses), np.array(exact_losses)
    relative = np.abs(fast_losses - exact_losses) / np.maximum(np.abs(exact_losses), 1e-12)
    return {"psnr_db": psnr(fast, exact),
            "mean_abs_level_difference": float(np.abs(fast.astype(float) - exact).mean()),
            "loss_relative_difference_mean": float(relative.mean()),
            "loss_relative_difference_max": float(relative.max()),
            "final_loss": {"fast": float(fast_losses[-1]), "float32": float(exact_losses[-1])}}


def markdown(name, rows, details):
    lines = [f"### {name}", ""]
    if rows:
        lines += ["| side | precision | seconds | ratio | CPU s | CPU ratio | GFLOP/s | start-up s | RSS before MiB "
                  "| peak RSS MiB |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append("| {} | {} | {:.1f} | {} | {:.1f} | {} | {:.0f} | {} | {} | {:.0f} |".format(
            row["side"], row["precision"], row["seconds"],
            f"{row['ratio']:.2f}x" if row["ratio"] else "-", row["cpu_s"],
            f"{row['cpu_ratio']:.2f}x" if row["cpu_ratio"] else "-", row["gflops"],
            f"{row['load_s']:.1f}" if row.get("load_s") else "-",
            f"{row['rss_before_mib']:.0f}" if row.get("rss_before_mib") else "-", row["peak_rss_mib"]))
    lines.append("")
    for key, value in details.items():
        lines.append(f"- {key}: {_short(value)}")
    lines.append("")
    return "\n".join(lines)


def _short(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items())
    if isinstance(value, list) and value and isinstance(value[0], float):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return str(value)


CROP = (800, 600)  # width, height: a picture's centre as a viewer shows it at 100 %
THUMBNAIL = (1200, 1200)


def save_views(image, folder, name):
    """`image`'s centre (CROP) and a thumbnail of the whole, as PNG files in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    height, width = image.shape[:2]
    top, left = max(0, (height - CROP[1]) // 2), max(0, (width - CROP[0]) // 2)
    Image.fromarray(image[top : top + CROP[1], left : left + CROP[0]]).save(folder / f"{name}-centre.png")
    whole = Image.fromarray(image)
    whole.thumbnail(THUMBNAIL)
    whole.save(folder / f"{name}-whole.png")
