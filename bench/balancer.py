"""Twelve dreams from three clients at once, side by side: one daemon directly, one daemon behind HAProxy, and
three daemons behind HAProxy; and what HAProxy adds to one request.

    python -m bench.balancer [--rounds 3] [--size 320x240] [--steps 10] [--pings 200]

The daemons (random weights, float32) and HAProxy (the repository's deploy/haproxy/deepdream.cfg, addresses
pointed at them: bench/haproxy_process.py) run on this machine. Each round runs the three sides back to back, in
an order that turns each round; a side's figure is its median, and its ratio the median of its per-round ratios
to the direct side (this machine's speed drifts over minutes: bench/README.md). The
added latency is the median of `--pings` pings, each on a fresh connection as DreamClient makes one per request
(TCP connect, ZeroMQ handshake, one request and reply), through HAProxy less directly. On a machine with fewer
cores than daemons the three share the cores: the figure is how the dreams spread and what the balancer costs,
not a speed-up."""

import argparse
import collections
import json
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from deepdream_client.client import DreamClient
from .daemon_process import free_port, start_daemon
from .haproxy_process import start_haproxy

from .photo import photo

CLIENTS, DREAMS_EACH = 3, 4  # twelve dreams, as in tests/test_balancer.py: four at once from each client
SIDES = ("direct", "haproxy-1", "haproxy-3")


def dreams_at_once(endpoint, images, params):
    """(wall seconds, {daemon: dreams}) for `images` dreamed all at once by CLIENTS clients in turn."""
    clients = [DreamClient(endpoint, timeout=600) for _ in range(CLIENTS)]
    jobs = [(clients[n % CLIENTS], image) for n, image in enumerate(images)]
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(lambda job: job[0].dream_array(job[1], params, return_result=True)[1], jobs))
        seconds = time.perf_counter() - started
    finally:
        for client in clients:
            client.close()
    return seconds, collections.Counter(result.header["daemon"] for result in results)


def ping_ms(endpoint, count):
    """The median milliseconds of `count` pings, each on its own fresh connection."""
    with DreamClient(endpoint) as client:
        client.ping()  # the first connection's one-time costs (the context's I/O thread) out of the figure
        times = []
        for _ in range(count):
            started = time.perf_counter()
            client.ping()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.balancer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", default="320x240", metavar="WxH", help="each dream's image (default 320x240)")
    parser.add_argument("--steps", type=int, default=10, help="steps of the one octave (default 10)")
    parser.add_argument("--pings", type=int, default=200, help="pings per side for the added latency")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    width, height = (int(side) for side in args.size.split("x"))
    params = {"octaves": 1, "steps": args.steps}
    images = [photo(width, height, seed=n) for n in range(CLIENTS * DREAMS_EACH)]

    agents = [free_port() for _ in range(3)]
    daemons = []
    try:
        with ThreadPoolExecutor(3) as pool:  # the three load side by side
            daemons += pool.map(lambda port: start_daemon("--agent-port", str(port), ready_timeout=300), agents)
        servers = [(f"d{n + 1}", daemon.endpoint, port) for n, (daemon, port) in enumerate(zip(daemons, agents))]
        with start_haproxy(servers[:1], free_port()) as one, start_haproxy(servers, free_port()) as three:
            wait_up(three, len(servers))
            wait_up(one, 1)
            endpoints = {"direct": daemons[0].endpoint, "haproxy-1": one.endpoint, "haproxy-3": three.endpoint}
            for daemon in daemons:  # each daemon compiles the dream's size once, before anything is timed
                dreams_at_once(daemon.endpoint, images[:1], params)
            figures = measure(endpoints, images, params, args)
    finally:
        for daemon in daemons:
            daemon.stop()
    names = {daemon.endpoint: f"d{n + 1}" for n, daemon in enumerate(daemons)}
    report(figures, names, args, f"{width}x{height}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)


def wait_up(balancer, count, timeout=30):
    deadline = time.monotonic() + timeout
    while sum(row["status"] == "UP" for row in balancer.servers().values()) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"HAProxy did not see {count} daemons up: {balancer.log_text()}")
        time.sleep(0.2)


def measure(endpoints, images, params, args):
    seconds = {side: [] for side in SIDES}
    spread = {side: collections.Counter() for side in SIDES}
    for round_index in range(args.rounds):
        order = SIDES[round_index % 3:] + SIDES[:round_index % 3]
        for side in order:
            wall, counts = dreams_at_once(endpoints[side], images, params)
            seconds[side].append(wall)
            spread[side].update(counts)
            print(f"round {round_index + 1} {side:10s} {wall:6.2f} s  {dict(counts)}", flush=True)
    pings = {side: ping_ms(endpoints[side], args.pings) for side in ("direct", "haproxy-1")}
    ratios = {side: statistics.median(wall / direct for wall, direct in zip(seconds[side], seconds["direct"]))
              for side in SIDES}
    return {"seconds": seconds, "median_seconds": {side: statistics.median(seconds[side]) for side in SIDES},
            "ratio_to_direct": ratios,
            "dreams_per_daemon": {side: dict(spread[side]) for side in SIDES}, "ping_ms": pings,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "rounds": args.rounds}


def report(figures, names, args, size):
    median = figures["median_seconds"]
    print(f"\n12 dreams ({size}, 1 octave of {args.steps} steps) from {CLIENTS} clients at once, "
          f"{args.rounds} rounds, {figures['cores']} cores:")
    print("| side | median s | / direct | dreams per daemon (all rounds) |")
    print("|---|---|---|---|")
    for side in SIDES:
        spread = ", ".join(f"{names.get(daemon, daemon)} {count}"
                           for daemon, count in sorted(figures["dreams_per_daemon"][side].items(),
                                                       key=lambda item: names.get(item[0], item[0])))
        print(f"| {side} | {median[side]:.2f} | {figures['ratio_to_direct'][side]:.2f} | {spread} |")
    pings = figures["ping_ms"]
    print(f"\nping on a fresh connection, median of {args.pings}: direct {pings['direct']:.2f} ms, through HAProxy "
          f"{pings['haproxy-1']:.2f} ms: HAProxy adds {pings['haproxy-1'] - pings['direct']:.2f} ms a request")


if __name__ == "__main__":
    main()
