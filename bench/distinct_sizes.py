"""The "distinct sizes" job: a warm daemon dreams images of as many distinct
sizes (2 octaves, 1 step each: a service meets a new size with nearly every
photo, and each brings its octave sizes), and `info` gives its resident memory
every 50 dreams. Two daemons, one after the other: as shipped (the engine gives
the heap's freed pages back after a dream: dream_engine/engine.py, _FreedMemory)
and without that (DEEPDREAM_HEAP_TRIM=0). The cost per dream (the client's
seconds, the daemon's CPU seconds) is compared as a ratio, and the first
dreams of both as pixels."""

import statistics
import time

import numpy as np

from . import memory
from .daemon_side import WarmDaemon
from .photo import photo

SIDES = range(100, 180)  # 6,400 distinct sizes; every one has 2 octaves over InceptionV3's 75 px
PARAMS = {"octaves": 2, "steps": 1}
COMPARED = 5  # the first dreams, whose pixels both daemons must agree on
VARIANTS = (("shipped", {}), ("without giving freed memory back", {"DEEPDREAM_HEAP_TRIM": "0"}))


def sizes(count, seed=0):
    """`count` distinct (height, width), in a seeded random order."""
    pairs = [(height, width) for height in SIDES for width in SIDES]
    return [pairs[index] for index in np.random.default_rng(seed).permutation(len(pairs))[:count]]


def run_daemon(count, every, env, precision="auto"):
    """One daemon through `count` distinct sizes: RSS when ready and every `every` dreams, seconds per dream."""
    source = photo(SIDES[-1], SIDES[-1])
    daemon = WarmDaemon(precision, env=env)
    try:
        info = daemon.client.info()
        rss, seconds, firsts = [(0, info["memory"]["rss_mib"])], [], []
        cpu_started = memory.cpu_seconds(daemon.process.pid)
        for number, (height, width) in enumerate(sizes(count), 1):
            started = time.perf_counter()
            dreamed = daemon.client.dream_array(source[:height, :width], PARAMS)
            seconds.append(time.perf_counter() - started)
            if number <= COMPARED:
                firsts.append(dreamed)
            if number % every == 0 or number == count:
                rss.append((number, daemon.client.info()["memory"]["rss_mib"]))
                print(f"  {number} dreams: RSS {rss[-1][1]} MiB, {statistics.mean(seconds[-every:]):.3f} s a dream",
                      flush=True)
        cpu_s = (memory.cpu_seconds(daemon.process.pid) - cpu_started) / count  # info's calls included: a few ms
        return {"rss": rss, "seconds": seconds, "cpu_s": cpu_s, "firsts": firsts, "precision": info["precision"]}
    finally:
        daemon.stop()


def measure(count=1000, every=50, precision="auto"):
    results = {}
    for label, env in VARIANTS:
        print(f"{label}: {count} distinct sizes", flush=True)
        results[label] = run_daemon(count, every, env, precision)
    return results


def summary(results):
    """The figures to keep (JSON): RSS by dreams, growth from the 200th dream on, median seconds per dream,
    and how far the two daemons' first dreams differ (levels)."""
    figures = {}
    for label, result in results.items():
        rss = dict(result["rss"])
        late = [mib for number, mib in result["rss"] if number >= 200]
        figures[label] = {"rss_mib": rss, "growth_mib": rss[max(rss)] - rss[0],
                          "growth_from_200th_mib": late[-1] - late[0] if late else None,
                          "seconds_per_dream": statistics.median(result["seconds"]),
                          "cpu_seconds_per_dream": result["cpu_s"], "precision": result["precision"]}
    shipped, default = results.values()
    figures["levels_apart"] = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(shipped["firsts"],
                                                                                    default["firsts"]))
    return figures


def markdown(results):
    """RSS every so many dreams side by side, then the cost per dream and the pixels compared."""
    figures = summary(results)
    (shipped_label, shipped), (default_label, default) = ((label, figures[label]) for label in results)
    ready = (shipped["rss_mib"][0], default["rss_mib"][0])
    lines = [f"| dreams | RSS MiB, {shipped_label} | growth | RSS MiB, {default_label} | growth |",
             "|---:|---:|---:|---:|---:|"]
    for number in shipped["rss_mib"]:
        ours, theirs = shipped["rss_mib"][number], default["rss_mib"].get(number)
        lines.append(f"| {number or 'ready'} | {ours} | {ours - ready[0]:+} | {theirs} | {theirs - ready[1]:+} |")
    ours, theirs = shipped["seconds_per_dream"], default["seconds_per_dream"]
    our_cpu, their_cpu = shipped["cpu_seconds_per_dream"], default["cpu_seconds_per_dream"]
    lines += ["", f"- precision: {shipped['precision']}",
              f"- growth from the 200th dream to the last: {shipped['growth_from_200th_mib']} MiB shipped, "
              f"{default['growth_from_200th_mib']} MiB without",
              f"- seconds per dream (median, the client's view): {ours:.3f} shipped, {theirs:.3f} without "
              f"(ratio without / shipped {theirs / ours:.2f}); the daemon's CPU seconds per dream: {our_cpu:.3f} "
              f"and {their_cpu:.3f} ({their_cpu / our_cpu:.2f})",
              f"- the first {COMPARED} dreams of the two differ by at most {figures['levels_apart']} levels", ""]
    return "\n".join(lines)
