"""Where a client's settings come from, each checked before any socket exists: the
endpoint, the CURVE keys and the transport, from an explicit value, else the
environment ($DEEPDREAM_ENDPOINT, $DEEPDREAM_SERVER_KEY, $DEEPDREAM_CLIENT_KEY,
$DEEPDREAM_TRANSPORT), else the client.json the installer wrote, else the default.
ZeroMQ takes some bad endpoints without a word and then waits forever, and
raises on others from inside connect(): a SettingsError says which value, where
it came from and what to write instead. Standard library, and pyzmq only for
CURVE keys (a Python without it is told to use `deepdream relay`)."""

import ipaddress
import json
import os
import re
import struct

try:
    import zmq
except ImportError:  # GIMP's Python on Windows, macOS, Flatpak, Snap: zmtp.py stands in
    zmq = None

from . import protocol, zmtp
from .paths import config_file

ENDPOINT_SCHEMES = ("tcp", "ipc")  # the transports the daemon listens on
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")  # a DNS name or an IPv4 address
_PORT = re.compile(r"[0-9]{1,5}")
TRANSPORTS = ("zmq", "zmtp")  # pyzmq (libzmq), or zmtp.py's pure-Python DEALER


class SettingsError(ValueError):
    """An endpoint or CURVE key that cannot work, found before any socket is
    made; the message names the value, where it came from, and what to write."""


def config_path():
    return config_file("client.json")


def load_config():
    """The installed client settings ({} when there are none or they cannot be read:
    a broken config file must not stop a client that was told its endpoint)."""
    try:
        settings = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def resolve_endpoint(explicit=None):
    """explicit, else $DEEPDREAM_ENDPOINT, else the config file's "endpoint", else
    the default; checked (check_endpoint)."""
    endpoint, source = lookup(explicit, "DEEPDREAM_ENDPOINT", "endpoint")
    return check_endpoint(endpoint or protocol.DEFAULT_ENDPOINT, source)


def check_endpoint(endpoint, source=None):
    """`endpoint` if a daemon can listen there (tcp://HOST:PORT or ipc://PATH),
    else SettingsError with a hint. `source` says where the value came from."""
    where = f" ({source})" if source else ""
    if not isinstance(endpoint, str):
        raise SettingsError(f"endpoint {endpoint!r}{where}: write it as text, e.g. {protocol.DEFAULT_ENDPOINT}")
    scheme, separator, address = endpoint.partition("://")
    if not separator:
        hint = (f"ipc://{endpoint}" if endpoint.startswith("/") else f"tcp://{endpoint}"
                if _tcp_problem(endpoint) is None else "tcp://HOST:PORT or ipc:///path/to/socket")
        raise SettingsError(f"endpoint {endpoint!r}{where} has no scheme: write {hint}")
    if scheme not in ENDPOINT_SCHEMES:
        raise SettingsError(f"endpoint {endpoint!r}{where}: the daemon listens on tcp://HOST:PORT or "
                            f"ipc:///path/to/socket, not {scheme}://")
    problem = _tcp_problem(address) if scheme == "tcp" else None if address else "no socket path after ipc://"
    if problem:
        raise SettingsError(f"endpoint {endpoint!r}{where}: {problem}")
    return endpoint


def is_loopback(endpoint):
    """Whether only this computer can reach `endpoint`: ipc://, or tcp:// to localhost or a loopback address (or
    the loopback interface by name, as a daemon may bind it). A host name is taken to face the network."""
    scheme, _, address = endpoint.partition("://")
    if scheme == "ipc":
        return True
    host = address.rpartition(":")[0].strip("[]")
    if host in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface or a host name


def _tcp_problem(address):
    """What is wrong with a tcp:// endpoint's HOST:PORT, or None."""
    host, _, port = address.rpartition(":")
    bracketed = "write an IPv6 address in brackets, then the port: tcp://[ADDRESS]:PORT, e.g. tcp://[::1]:5555"
    if address.startswith("[") and "]" not in address:  # "[::1": any suggestion from its colons would be wrong
        return f"the IPv6 address has no closing ']'; {bracketed}"
    if not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        example = "tcp://[::1]:5555" if address.startswith("[") else protocol.DEFAULT_ENDPOINT
        return f"write tcp://HOST:PORT with a port from 1 to 65535, e.g. {example}"
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host} is not an IPv6 address"
        return None
    if ":" in host:
        try:  # an IPv6 address before the last colon: that colon's number is likely the port
            ipaddress.IPv6Address(host)
        except ValueError:
            return bracketed
        return f"write an IPv6 address in brackets: tcp://[{host}]:{port}"
    if not _HOST.fullmatch(host):
        return f"{host!r} is not a host name or address" if host else f"no host before :{port}"
    return None


def resolve_server_key(explicit=None):
    """The daemon's CURVE public key, as for the endpoint: explicit, else
    $DEEPDREAM_SERVER_KEY, else the config file's "server_key"; None means no
    CURVE. The value is the Z85 key itself or the path of its key file (the
    daemon's server.key). SettingsError if it is neither."""
    key, source = lookup(explicit, "DEEPDREAM_SERVER_KEY", "server_key")
    if not key:
        return None
    where = f" ({source})" if source else ""
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(key, str):
        raise SettingsError(f"the daemon's CURVE key{where}: give the 40-character Z85 key or its key file")
    if zmq is None:
        raise SettingsError(relay_advice(f"the daemon's CURVE key is set{where}"))
    if len(key) == 40 and not os.path.exists(key):
        return _check_key(key, f"the daemon's CURVE key {key!r}{where}")  # a public key: fine to show
    return _load_key_file(key, f"the daemon's CURVE key file {key}{where}")[0]


def resolve_client_keys(explicit=None):
    """This client's CURVE (public, secret) pair: explicit (a pair, or the path
    of a .key_secret file made by zmq.auth), else $DEEPDREAM_CLIENT_KEY, else the
    config file's "client_key"; None lets a fresh pair be made per client (enough
    for a daemon that has no list of authorized clients). SettingsError if
    unusable."""
    keys, source = lookup(explicit, "DEEPDREAM_CLIENT_KEY", "client_key")
    if not keys:
        return None
    where = f" ({source})" if source else ""
    if zmq is None:
        raise SettingsError(relay_advice(f"this client's CURVE key is set{where}"))
    if isinstance(keys, (tuple, list)):
        if len(keys) != 2:
            raise SettingsError(f"this client's CURVE keys{where}: give a (public, secret) pair or a .key_secret file")
        return tuple(_check_key(key, f"this client's CURVE keys{where}") for key in keys)  # one is secret: not shown
    if not isinstance(keys, (str, os.PathLike)):
        raise SettingsError(f"this client's CURVE keys{where}: give the path of a .key_secret file")
    what = f"this client's CURVE key file {os.fspath(keys)}{where}"
    public, secret = _load_key_file(keys, what)
    if secret is None:
        raise SettingsError(f"{what} holds no secret key; give the .key_secret file")
    return public, secret


def relay_advice(what):
    """Why a Python without pyzmq cannot use CURVE, and the one command that makes it work."""
    return (f"{what}, but this Python has no ZeroMQ library (pyzmq), so it cannot encrypt with CURVE. Run the "
            "relay from your DeepDream installation on this computer: deepdream relay --to tcp://HOST:5555 "
            "--server-key SERVER_KEY_FILE; it listens on tcp://127.0.0.1:5555, where GIMP looks by default, so "
            "then remove the keys and the remote address from these settings")


def resolve_transport(explicit=None):
    """The socket module: explicit, else $DEEPDREAM_TRANSPORT, else pyzmq where it imports, else zmtp."""
    name = explicit or os.environ.get("DEEPDREAM_TRANSPORT") or ("zmq" if zmq is not None else "zmtp")
    if name not in TRANSPORTS:
        raise SettingsError(f"transport {name!r}: write zmq (pyzmq) or zmtp (pure Python, tcp:// only)")
    if name == "zmq" and zmq is None:
        raise SettingsError("transport zmq: this Python has no pyzmq; install it, or use zmtp")
    return zmq if name == "zmq" else zmtp


def lookup(explicit, variable, key):
    """(value, where it came from) of a client setting: explicit, else
    $variable, else the config file's `key`."""
    if explicit:
        return explicit, None
    if os.environ.get(variable):
        return os.environ[variable], f"from ${variable}"
    return load_config().get(key), f'"{key}" in {config_path()}'


def _load_key_file(path, what):
    """(public, secret or None) from a key file written by zmq.auth, both checked."""
    from zmq.auth import load_certificate  # only now: plain-TCP clients never need it

    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise SettingsError(f"{what}: no such file (give the key file, or the 40-character Z85 key itself)")
    try:
        public, secret = load_certificate(path)
    except OSError as error:
        raise SettingsError(f"{what}: cannot read it ({error.strerror or error})") from None
    except ValueError:
        raise SettingsError(f"{what}: not a key file (it has no public-key line)") from None
    return _check_key(public, what), None if secret is None else _check_key(secret, what)


def _check_key(key, what):
    """A CURVE key as the 40 bytes of its Z85 text; SettingsError if it is not one
    (libzmq would refuse it only inside the socket)."""
    from zmq.utils import z85  # only with pyzmq: CURVE needs it (relay_advice otherwise)

    try:
        text = key.encode("ascii") if isinstance(key, str) else bytes(key)
        if len(text) == 40:
            z85.decode(text)  # every character in Z85's alphabet, every 5-character group under 2**32
            return text
    except (TypeError, ValueError, KeyError, struct.error):  # what bytes() and z85.decode raise on junk
        pass
    raise SettingsError(f"{what}: not a valid key (a CURVE key is 40 characters of Z85 text, as in a zmq key file)")
