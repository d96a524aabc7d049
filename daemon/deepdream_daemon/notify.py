"""systemd's sd_notify, without a dependency: a datagram to $NOTIFY_SOCKET.

Outside systemd (no NOTIFY_SOCKET) every call does nothing."""

import os
import socket


def notify(*lines):
    """Send lines such as "READY=1" or "STATUS=dreaming"; errors are ignored,
    since a service manager that went away must not stop the daemon."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as channel:
            channel.connect(address)
            channel.sendall("\n".join(lines).encode())
    except OSError:
        pass


def status(text):
    notify(f"STATUS={text}")
