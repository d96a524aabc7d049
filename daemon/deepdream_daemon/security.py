"""Who may reach the daemon: loopback by default, CURVE for anything wider,
private folders for ipc sockets, and one daemon per endpoint."""

import errno
import logging
import os
import socket
import stat
from pathlib import Path

import zmq

from deepdream_client.settings import is_loopback

from .config import ConfigError

log = logging.getLogger("deepdream.daemon")

SERVER_KEY_NAME = "server"
AUTHORIZED_CLIENTS = "authorized_clients"


def check_endpoint(endpoint, encrypted):
    """Refuse an endpoint that would let strangers in without CURVE."""
    if endpoint.startswith("tcp://") and not encrypted and not is_loopback(endpoint):
        raise ConfigError(
            f"refusing to listen on {endpoint} without encryption: anyone who can reach this machine could send "
            f"it work and read the images. Use a loopback address (tcp://127.0.0.1:PORT), or pass "
            f"--curve-keys DIR to encrypt and authenticate the connection."
        )
    if endpoint.startswith("ipc://@") and not encrypted:
        raise ConfigError(f"refusing {endpoint}: abstract ipc sockets have no file permissions; "
                          f"use a path such as ipc://$XDG_RUNTIME_DIR/deepdream/daemon.sock")


def prepare_ipc(endpoint):
    """Make the socket's folder private (0700) and refuse to take over a socket
    another daemon is serving: ZeroMQ would silently unlink and rebind it."""
    path = Path(endpoint[len("ipc://"):])
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
    info = folder.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or info.st_uid != os.getuid():
        # /tmp and the like (sticky, or someone else's) are shared on purpose: never advise closing them.
        shared = info.st_uid != os.getuid() or info.st_mode & stat.S_ISVTX
        fix = ("use a folder of your own" if shared else f"make it private (chmod 700 {folder}), or use another")
        raise ConfigError(
            f"refusing {endpoint}: the folder {folder} is open to other users, who could connect to the socket; "
            f"{fix}, such as ipc://$XDG_RUNTIME_DIR/deepdream/daemon.sock (a missing folder is created private)"
        )
    if path.exists() and _unix_socket_answers(path):
        raise already_in_use(endpoint)


def _unix_socket_answers(path):
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False  # a stale file from a daemon that died: binding replaces it
    finally:
        probe.close()


def already_in_use(endpoint):
    return ConfigError(
        f"{endpoint} is already in use: another deepdream-daemon (or another program) is listening there. "
        f"Stop it first (systemctl --user stop deepdream), or give this one another --endpoint."
    )


def bind(router, endpoint):
    try:
        router.bind(endpoint)
    except zmq.ZMQError as error:
        if error.errno == errno.EADDRINUSE:
            raise already_in_use(endpoint) from None
        raise ConfigError(f"cannot listen on {endpoint}: {error.strerror}") from None


def server_keys(folder):
    """(public, secret) of the daemon, created in `folder` (0700, key files 0600) on first use. As ssh
    does with ~/.ssh, a folder or secret key others may read (or that another user owns) is refused."""
    import zmq.auth

    folder = Path(folder).expanduser()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _refuse_shared(folder, stat.S_IRWXG | stat.S_IRWXO, "700", "the key folder", "list and read the daemon's keys")
    secret_file = folder / f"{SERVER_KEY_NAME}.key_secret"
    if not secret_file.exists():
        old_umask = os.umask(0o077)  # the secret must never exist readable by others, not even briefly
        try:
            public_file, secret_file = zmq.auth.create_certificates(str(folder), SERVER_KEY_NAME)
        finally:
            os.umask(old_umask)
        for made in (public_file, secret_file):
            os.chmod(made, 0o600)
        log.info("created the CURVE key pair %s; clients need %s", secret_file, public_file)
    try:
        public, secret = zmq.auth.load_certificate(str(secret_file))
        intact = secret is not None and zmq.curve_public(secret) == public
    except (ValueError, KeyError, zmq.ZMQError):  # what pyzmq raises on damaged files and bad Z85 text
        intact = False
    if not intact:
        raise ConfigError(f"the key file {secret_file} is damaged: it holds no matching CURVE key pair. Move it "
                          f"and {folder / 'server.key'} away to make a new pair (clients then need the new "
                          f"server.key)")
    _refuse_shared(Path(secret_file), stat.S_IRWXG | stat.S_IRWXO, "600", "the secret key",
                   "read it and pose as this daemon")
    return public, secret


def start_curve(context, router, folder):
    """Make `router` a CURVE server and start the ZAP handler that vets client keys.
    Returns the authenticator (stop it at exit)."""
    from zmq.auth.thread import ThreadAuthenticator

    public, secret = server_keys(folder)
    router.curve_server = True
    router.curve_publickey = public
    router.curve_secretkey = secret
    authenticator = ThreadAuthenticator(context, log=logging.getLogger("deepdream.daemon.auth"))
    authenticator.start()
    authorized = Path(folder).expanduser() / AUTHORIZED_CLIENTS
    if authorized.is_dir() and any(authorized.glob("*.key")):
        try:
            check_client_keys(authorized)
        except ConfigError:
            authenticator.stop()
            raise
        # (pyzmq logs a key file it cannot load and then allows no client at all: hence the check first.)
        authenticator.configure_curve(domain="*", location=str(authorized))
        log.info("CURVE on: only clients whose keys are in %s may connect", authorized)
    else:
        authenticator.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
        log.info("CURVE on: any client that knows the server key may connect (put client keys in %s to restrict)",
                 authorized)
    return authenticator


def check_client_keys(authorized):
    """Refuse, naming it, a file in authorized_clients/ that others may change (they could authorize
    themselves) or that holds no readable CURVE public key; the folder too, if others may write to it."""
    import zmq.auth
    from zmq.utils import z85

    _refuse_shared(authorized, stat.S_IWGRP | stat.S_IWOTH, "go-w", "the authorized keys' folder",
                   "add keys of their own")
    for path in sorted(authorized.glob("*.key")):
        try:
            _refuse_shared(path, stat.S_IWGRP | stat.S_IWOTH, "go-w", "the client key", "replace it with their own")
            public, _ = zmq.auth.load_certificate(str(path))
            z85.decode(public)
            intact = len(public) == 40
        except OSError as error:
            raise ConfigError(f"cannot read the client key {path} ({error.strerror or error}): make it readable by "
                              f"the user the daemon runs as (chmod 644 {path}), or move it out of {authorized}") \
                from None
        except (ValueError, KeyError, TypeError):  # no public-key line, or one that is not Z85 text
            intact = False
        if not intact:
            raise ConfigError(f"the client key {path} holds no CURVE public key (the public .key file of a "
                              f"pair zmq.auth made): replace it, or move it out of {authorized}")


def _refuse_shared(path, forbidden, chmod, what, could):
    """ssh's rule for its own files: ConfigError, one line with the chmod to run, when `path` has any
    of the `forbidden` mode bits or another user owns it."""
    info = path.stat()
    if info.st_uid != os.getuid():
        raise ConfigError(f"{what} {path} belongs to another user (uid {info.st_uid}), who could {could}: use a "
                          f"folder of your own for --curve-keys")
    if info.st_mode & forbidden:
        raise ConfigError(f"permissions {stat.S_IMODE(info.st_mode):04o} for {what} {path} are too open: other users "
                          f"could {could}. Run: chmod {chmod} {path}")
