"""Resident memory of a process, from /proc (Linux): the figure that decides
whether a 24 MP dream fits on a laptop."""

import os
import sys
from pathlib import Path


def _status_kib(field, pid="self"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_mib(pid="self"):
    return _status_kib("VmRSS", pid) / 1024


def peak_rss_mib(pid="self"):
    """The high-water mark of resident memory (VmHWM): what the OS had to give."""
    return _status_kib("VmHWM", pid) / 1024


def reset_peak(pid="self"):
    """Start the high-water mark again from the current RSS, so the peak
    measured afterwards belongs to the work that follows, not to model loading."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid="self"):
    """User + system CPU time of a whole process so far. On a shared machine
    this is steadier than wall time: waiting for a core does not count."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def device_peak_mib():
    """The most GPU memory this process's framework held at once, in MiB (PyTorch's
    allocator or JAX's first device); None on a CPU or where the framework does not say.
    Asks only a framework already loaded: TensorFlow's, the default, is not asked."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    jax = sys.modules.get("jax")
    if jax is not None:
        device = jax.devices()[0]
        stats = device.memory_stats() if device.platform == "gpu" else None
        if stats and "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"] / 2**20
    return None
