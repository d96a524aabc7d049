"""deepdream-daemon: bind, start the worker (which loads the model), serve until SIGTERM."""

import logging
import os
import signal
import sys
from importlib import metadata

import zmq

from . import agent, security
from .config import ConfigError, load_settings
from .jobs import JobQueue
from .server import SEND_HWM, Server
from .worker import Outbox, Worker

log = logging.getLogger("deepdream.daemon")

OUTBOX_ADDRESS = "inproc://deepdream-outbox"
LINGER_MS = 2000  # time the last replies (SHUTTING_DOWN, results) get to leave at exit


def main(argv=None):
    try:
        settings = load_settings(argv)
    except ConfigError as failure:
        print(f"deepdream-daemon: {failure}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s deepdream-daemon %(levelname)s: %(message)s")
    choose_device(settings.device)
    if settings.print_device:
        return print_device(settings)
    context = zmq.Context()
    router = make_router(context, settings)
    authenticator = None
    try:
        for endpoint in settings.endpoints:
            security.check_endpoint(endpoint, encrypted=bool(settings.curve_keys))
            if endpoint.startswith("ipc://"):
                security.prepare_ipc(endpoint)
        if settings.curve_keys:
            authenticator = security.start_curve(context, router, settings.curve_keys)
        for endpoint in settings.endpoints:
            security.bind(router, endpoint)
        agent_listener = agent.listen(settings.endpoints[0], settings.agent_port) if settings.agent_port else None
    except (ConfigError, OSError) as failure:
        log.error("%s", failure)
        router.close(linger=0)
        if authenticator:
            authenticator.stop()
        context.term()
        return 1

    jobs = JobQueue(settings.queue_length)
    bell = context.socket(zmq.PULL)
    bell.bind(OUTBOX_ADDRESS)
    outbox = Outbox(context, OUTBOX_ADDRESS)
    worker = Worker(settings, jobs, outbox)
    server = Server(settings, router, bell, jobs, worker, outbox, package_version())
    if agent_listener:
        agent.serve(agent_listener, server)  # before the model loads: HAProxy hears "down" while it does

    def request_stop(signum, _frame):
        server.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("listening on %s; loading the model (%s weights, %s backend, device %s, precision %s)",
             ", ".join(settings.endpoints), settings.weights, settings.backend, settings.device, settings.precision)
    worker.start()
    server.serve()

    router.close(linger=LINGER_MS)
    bell.close()
    if authenticator:
        authenticator.stop()
    if worker.is_alive():
        # Still importing or loading TensorFlow, which cannot be interrupted; nothing was
        # running, so leave without waiting for it (and without the interpreter's teardown).
        logging.shutdown()
        os._exit(0)
    context.term()
    log.info("stopped")
    return 0


def choose_device(device):
    """Must run before the backend loads: TensorFlow, JAX and PyTorch read these once, at import."""
    # (TF_CPP_MIN_LOG_LEVEL is dream_engine's own business: its package sets it before TensorFlow loads.)
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        os.environ["KERAS_TORCH_DEVICE"] = "cpu"  # Keras's torch backend would take Apple's GPU (mps) by itself
    # Take GPU memory as needed rather than all of it up front: the GPU may be shared with GIMP
    # and other programs, and out-of-memory is then a per-dream error we can retry. (PyTorch's
    # allocator grows by itself; TensorFlow and JAX take most of the GPU at start unless told.)
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def print_device(settings):
    """--print-device: the backend, device and precision these settings dream with, asked of the
    installed stack without loading the model (install.sh's last lines)."""
    from dream_engine import startup

    try:
        startup.use_backend(settings.backend)
        startup.load_quietly()
        from dream_engine.model import describe_device, resolve_precision

        device, precision = describe_device(), resolve_precision(settings.precision)
    except ImportError as failure:
        print(f"deepdream-daemon: the {settings.backend} backend is not installed ({failure}); "
              f"install.sh --backend {settings.backend} installs it", file=sys.stderr)
        return 1
    print(f"backend {settings.backend}, device {device}, precision {precision}"
          + (" (auto)" if settings.precision == "auto" else ""))
    return 0


def make_router(context, settings):
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a vanished peer fails: our liveness probe
    router.setsockopt(zmq.MAXMSGSIZE, settings.max_message_bytes)  # bigger messages are dropped unread
    # A few messages queued per client in ZeroMQ; what must arrive waits beyond them in the server's backlog.
    router.setsockopt(zmq.SNDHWM, SEND_HWM)
    router.setsockopt(zmq.LINGER, LINGER_MS)
    router.setsockopt(zmq.IPV6, 1)  # so that tcp://[::1]:PORT works; IPv4 addresses are unaffected
    return router


def package_version():
    try:
        return metadata.version("deepdream-gimp")
    except metadata.PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
