"""`deepdream relay`: plain ZeroMQ on this computer, CURVE to a remote daemon.

GIMP's Python has no pyzmq on the official builds, and the client library's
own ZMTP (zmtp.py) has no CURVE. The relay runs from the project's venv,
where pyzmq is: a ROUTER bound to a loopback address for the local clients and
a DEALER with CURVE connected to the remote daemon, joined by libzmq's own
proxy (zmq.proxy), which forwards whole messages both ways. The ROUTER puts
each client's identity in front of its requests, and the daemon sends every
reply back with that envelope (docs/protocol.md, "Relays"), so many clients
share the relay and each gets its own replies, progress and previews.

What a relay cannot pass on: the daemon notices a vanished client by its
connection closing, and behind the relay the connection is the relay's, so
the dream of a client that was killed (not cancelled) runs to its end."""

import logging
import threading

import zmq
from zmq.utils.monitor import recv_monitor_message

from deepdream_client.settings import (SettingsError, check_endpoint, is_loopback, resolve_client_keys,
                                       resolve_server_key)

log = logging.getLogger("deepdream.relay")

# What the monitor tells about the connection to the daemon, in words.
_EVENTS = {
    zmq.EVENT_CONNECTED: "connected to {to}",
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "CURVE handshake with {to} done: relaying",
    zmq.EVENT_DISCONNECTED: "the connection to {to} closed; libzmq reconnects by itself",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the daemon at {to} refused this relay's key (not among its authorized "
                                     "clients?); pass the right one with --client-key",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the CURVE handshake with {to} failed: is --server-key the daemon's key?",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the CURVE handshake with {to} failed: is --server-key the daemon's key?",
}


def check_listen(endpoint):
    """The relay's local side is plain text: only this computer may reach it."""
    endpoint = check_endpoint(endpoint, "--listen")
    if endpoint.startswith("tcp://") and not is_loopback(endpoint):
        raise SettingsError(f"--listen {endpoint}: the relay's side for clients is unencrypted, so it listens on "
                            f"this computer only; use tcp://127.0.0.1:PORT")
    return endpoint


def run(listen, to, server_key, client_key=None):
    """Relay until interrupted. SettingsError (before any socket) for an address or key that cannot work."""
    listen = check_listen(listen)
    to = check_endpoint(to, "--to")
    server_key = resolve_server_key(server_key)
    if server_key is None:
        raise SettingsError("--server-key: give the remote daemon's CURVE public key (its server.key file or the "
                            "40-character key): the relay exists to encrypt")
    public, secret = resolve_client_keys(client_key) or zmq.curve_keypair()
    context = zmq.Context()
    front = context.socket(zmq.ROUTER)
    back = context.socket(zmq.DEALER)
    for each in (front, back):
        each.setsockopt(zmq.LINGER, 0)
        each.setsockopt(zmq.IPV6, 1)
        each.setsockopt(zmq.SNDHWM, 0)  # a dream's result is never dropped: the daemon bounds what is in flight
        each.setsockopt(zmq.RCVHWM, 0)
    back.curve_serverkey, back.curve_publickey, back.curve_secretkey = server_key, public, secret
    try:
        front.bind(listen)
    except zmq.ZMQError as error:
        context.destroy(linger=0)
        raise SettingsError(f"cannot listen on {listen}: {zmq.strerror(error.errno)} (another relay or a daemon "
                            f"there? choose another address with --listen)") from None
    monitor = back.get_monitor_socket()
    threading.Thread(target=_report, args=(monitor, to), daemon=True, name="relay-monitor").start()
    back.connect(to)
    log.info("relaying %s (plain, this computer only) to %s (CURVE)", listen, to)
    try:
        zmq.proxy(front, back)
    except zmq.ContextTerminated:
        pass
    finally:
        context.destroy(linger=0)


def _report(monitor, to):
    """Log what happens to the connection to the daemon: the relay's only window on a wrong key."""
    while True:
        try:
            event = recv_monitor_message(monitor)
        except zmq.ZMQError:  # the context ended
            return
        said = _EVENTS.get(event["event"])
        if said:
            failed = event["event"] in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                                        zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            log.log(logging.WARNING if failed else logging.INFO, said.format(to=to))
