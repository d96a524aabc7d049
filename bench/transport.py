"""The client's two transports side by side: a 24 MP float32 image's round trip through real libzmq.

    python -m bench.transport [--megapixels 24] [--repeats 5]

pyzmq (libzmq) and zmtp.py (the pure-Python ZMTP that GIMP's Python uses
without pyzmq) each send the image as a dream request's payload to a libzmq
ROUTER on loopback, which sends the message back whole; the figure is the
bytes moved both ways over the best round trip's seconds, and the ratio of
the two. The ROUTER is the daemon's own socket type with the daemon's
options; no dream is run, so what is measured is the transport alone."""

import argparse
import platform
import threading
import time

import zmq

from deepdream_client import protocol, zmtp


def echo_router():
    """A libzmq ROUTER on a free loopback port that returns every message to its sender; its endpoint."""
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.setsockopt(zmq.SNDHWM, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def serve():
        while True:
            router.send_multipart(router.recv_multipart(copy=False), copy=False)

    threading.Thread(target=serve, daemon=True).start()
    return f"tcp://127.0.0.1:{port}"


def best_round_trip(module, endpoint, frames, repeats):
    dealer = module.Context().socket(module.DEALER)
    dealer.connect(endpoint)
    assert dealer.poll(5000, module.POLLOUT)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        dealer.send_multipart(frames)
        assert dealer.poll(120_000, module.POLLIN)
        back = dealer.recv_multipart()
        best = min(best, time.perf_counter() - started)
        assert len(back) == len(frames) and len(back[-1]) == len(frames[-1])
    dealer.close()
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.transport", description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", type=float, default=24.0, help="image size (default: 24, 6000x4000)")
    parser.add_argument("--repeats", type=int, default=5, help="round trips per transport; the best counts")
    args = parser.parse_args(argv)
    width = 6000
    height = int(args.megapixels * 1e6 / width)
    payload = bytearray(width * height * 3 * 4)  # RGB float32
    header = protocol.pack(protocol.request("dream", "bench", params={}, progress=True,
                                            image=protocol.raw_image(width, height, 3, "float32")))
    frames = [b"", header, payload]
    endpoint = echo_router()
    moved = 2 * len(payload)
    rates = {}
    for name, module in (("pyzmq", zmq), ("zmtp", zmtp)):
        seconds = best_round_trip(module, endpoint, frames, args.repeats)
        rates[name] = moved / seconds / 1e6
        print(f"{name:6s} {seconds:6.3f} s  {rates[name]:7.0f} MB/s")
    print(f"{width}x{height} RGB float32 ({len(payload) / 1e6:.0f} MB each way), best of {args.repeats}; "
          f"zmtp / pyzmq = {rates['zmtp'] / rates['pyzmq']:.2f}; {platform.processor() or platform.machine()}, "
          f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
