"""HAProxy's agent check, answered on a small TCP port of the daemon's own (--agent-port).

HAProxy connects every agent-inter, reads one line and closes (its manual,
"agent-check"): whether this daemon should get new connections, each of which
is one dream. A loading or broken daemon says "down" (a dream sent there would
only wait), a full queue "drain" (it would get QUEUE_FULL), anything else "up
ready" with a weight that falls as the queue fills: a relay's many dreams share
one connection, so HAProxy's leastconn alone undercounts them. Only the agent
can undo what it said, so every line says both the state and the admin word.

The thread only reads the worker's and the queue's plain attributes (safe under
the GIL): a daemon busy in a long step still answers at once."""

import logging
import os
import socket
import threading
from urllib.parse import urlsplit

from .config import ConfigError

log = logging.getLogger("deepdream.daemon")

ANSWER_TIMEOUT_S = 1.0  # a peer that does not take one short line in this long is not HAProxy


def reply(state, stopping, busy, queued, capacity):
    """The agent's line for a daemon in `state` ("loading", "ready", "error") with `queued` of `capacity` places
    taken and a dream running (`busy`) or not. The text after # shows in HAProxy's stats."""
    if stopping:
        return "down #shutting down\n"
    if state == "loading":
        return "down #loading the model\n"
    if state != "ready":
        return "down #cannot load its model (see its log)\n"
    if queued >= capacity:
        return f"up drain #queue full ({queued} waiting)\n"
    places = capacity + 1  # the running dream's and the queue's
    weight = max(1, round(100 * (places - queued - busy) / places))
    return f"up ready {weight}%\n"


def listen(endpoint, port):
    """The agent's listening socket on `endpoint`'s host (every interface for a wildcard, loopback for ipc), so it
    faces whom the daemon faces; ConfigError when it cannot listen there."""
    try:
        return _listener(endpoint, port)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)  # create_server adds the address to strerror
        raise ConfigError(f"cannot answer HAProxy's agent check on port {port}: {reason}; give --agent-port a free "
                          f"port (or 0 for no agent)") from None


def _listener(endpoint, port):
    host = urlsplit(endpoint).hostname if endpoint.startswith("tcp://") else "127.0.0.1"
    if host in ("*", "0.0.0.0"):
        return socket.create_server(("", port))
    if host == "::":
        return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)


def serve(listener, server):
    """Answer each connection with the line for `server`'s daemon now, on a thread of its own, until the process
    ends."""
    def answer():
        return reply(server.worker.state, server.stop_requested, server.worker.current is not None, len(server.jobs),
                     server.settings.queue_length)

    def run():
        while True:
            try:
                peer, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            with peer:
                try:
                    peer.settimeout(ANSWER_TIMEOUT_S)
                    peer.sendall(answer().encode("ascii"))
                except OSError:
                    pass  # the checker left first: it asks again next interval
                except Exception:  # noqa: BLE001  a bug here must not end the answers, nor the daemon
                    log.exception("the agent check failed to answer")

    log.info("answering HAProxy's agent check on port %d", listener.getsockname()[1])
    thread = threading.Thread(target=run, name="haproxy-agent", daemon=True)
    thread.start()
    return thread
