"""DreamClient: talk to deepdream-daemon over the wire protocol v1.

msgpack and the standard library, and pyzmq where it can be imported: this
module also runs inside GIMP's own Python, copied beside the plug-in with the
rest of the deepdream_client package, and official GIMP builds cannot load
pyzmq. Without it the sockets come from zmtp.py, which speaks ZeroMQ's wire
protocol itself (tcp:// only, no CURVE: `deepdream relay` adds that);
$DEEPDREAM_TRANSPORT (zmq or zmtp) chooses one by name. numpy is used only by
dream_array, and only when the caller has it.

Every request gets its own DEALER socket, so a client object may be shared by
threads and a socket that timed out is simply thrown away (the zguide's lazy
pirate). One thread's cancel() of a dream another thread is waiting for is
handed to that thread, which sends it on the dream's own socket: behind a load
balancer that picks a daemon per connection, only that connection reaches the
daemon running the dream. Idempotent requests (ping, info, cancel) are retried
on a fresh socket until their deadline, which carries them across a daemon
restart; a dream is never resent.

Settings are checked before any socket exists (check_endpoint, the resolve_*
functions): ZeroMQ takes some bad endpoints without a word and then waits
forever, and raises on others from inside connect(). close() never blocks."""

import contextlib
import ipaddress
import json
import os
import re
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field

try:
    import zmq
except ImportError:  # GIMP's Python on Windows, macOS, Flatpak, Snap: zmtp.py stands in
    zmq = None

from . import protocol, zmtp
from .paths import config_file
from .vocabulary import BAD_REQUEST, CANCELLED, ENCODED, INTERNAL

DEFAULT_TIMEOUT = 10.0
CANCEL_GRACE = 3.0  # how long an interrupted dream waits to see the daemon confirm the cancel
_FIRST_ATTEMPT = 0.25  # lazy-pirate attempts start short and double: a live daemon answers in ms
_LONGEST_ATTEMPT = 2.0
_POLL_SLICE = 0.1  # how often a dream looks at cancel_check while it waits
_MIN_DREAM_SILENCE = 3.0  # three missed heartbeats (the daemon sends one a second): one late one is no loss
_LOST_PING = 2.0  # the ping that tells a lost dream's user whether the daemon is still there
ENDPOINT_SCHEMES = ("tcp", "ipc")  # the transports the daemon listens on
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")  # a DNS name or an IPv4 address
_PORT = re.compile(r"[0-9]{1,5}")
TRANSPORTS = ("zmq", "zmtp")  # pyzmq (libzmq), or zmtp.py's pure-Python DEALER


class DaemonError(Exception):
    """The daemon answered with an `error` reply; `code` is the protocol's error code."""

    def __init__(self, code, message, request_id=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class DaemonUnavailable(Exception):
    """No daemon answered in time (not running, wrong endpoint, wrong keys, or it
    died), or the daemon lost a dream (it restarted)."""

    def __init__(self, endpoint, message):
        super().__init__(message)
        self.endpoint = endpoint


class SettingsError(ValueError):
    """An endpoint or CURVE key that cannot work, found before any socket is
    made; the message names the value, where it came from, and what to write."""


class DreamInterrupted(KeyboardInterrupt):
    """Ctrl-C during a dream, raised once the daemon was asked to cancel it;
    `stopped`: whether the daemon confirmed that the dream ended."""

    def __init__(self, endpoint, stopped):
        super().__init__(f"the daemon at {endpoint} stopped the dream" if stopped else
                         f"asked the daemon at {endpoint} to stop the dream; it did not confirm "
                         f"within {CANCEL_GRACE:g} s")
        self.endpoint = endpoint
        self.stopped = stopped


@dataclass
class DreamResult:
    pixels: bytes  # raw bytes laid out as `image` says, or PNG bytes for an encoded request
    image: dict
    stats: dict = field(default_factory=dict)
    header: dict = field(default_factory=dict)


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
    endpoint, source = _setting(explicit, "DEEPDREAM_ENDPOINT", "endpoint")
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
    key, source = _setting(explicit, "DEEPDREAM_SERVER_KEY", "server_key")
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
    keys, source = _setting(explicit, "DEEPDREAM_CLIENT_KEY", "client_key")
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


def _setting(explicit, variable, key):
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


class DreamClient:
    def __init__(self, endpoint=None, timeout=DEFAULT_TIMEOUT, curve_server_key=None, curve_client_keys=None,
                 transport=None):
        """`timeout`: seconds a ping/info/cancel may take in all (retries included),
        and the silence about a dream (at least 3 s) after which it is lost.
        `curve_server_key`: the daemon's CURVE public key (Z85 or key file path);
        `curve_client_keys`: this client's (public, secret) pair or its secret key file,
        not given: see resolve_client_keys. `transport`: "zmq" or "zmtp", not
        given: see resolve_transport. A setting that cannot work raises
        SettingsError here, before any socket exists."""
        self.endpoint = resolve_endpoint(endpoint)
        self.timeout = timeout
        self._zmq = resolve_transport(transport)
        self.transport = "zmq" if self._zmq is zmq else "zmtp"
        curve_asked = _setting(curve_server_key, "DEEPDREAM_SERVER_KEY", "server_key")[0]
        if self._zmq is zmtp and zmq is not None and curve_asked:
            raise SettingsError(relay_advice("the daemon's CURVE key is set and the zmtp transport was chosen"))
        self._server_key = resolve_server_key(curve_server_key)
        self._client_keys = None
        if self._server_key:
            self._client_keys = resolve_client_keys(curve_client_keys) or zmq.curve_keypair()
        if self.transport == "zmtp" and not self.endpoint.startswith("tcp://"):
            raise SettingsError(f"endpoint {self.endpoint}: without pyzmq this client reaches a daemon over "
                                f"tcp:// only; start it with --endpoint tcp://127.0.0.1:5555 and use that")
        self._context = self._zmq.Context()
        self._problem = None  # why the last connection failed, when the transport can tell (zmtp)
        self._flights = {}  # request id -> _Flight: this client's dreams being waited for, which cancel() reaches

    # -- requests that may be repeated ------------------------------------------------------

    def ping(self, timeout=None):
        """The daemon's `pong` header: state, busy, queued, model, weights, device, ..."""
        return self._call("ping", timeout)

    def info(self, timeout=None):
        """The `info` header: layers, defaults (params), limits."""
        return self._call("info", timeout)

    def cancel(self, target_id, timeout=None, daemon=None):
        """Ask the daemon to stop the dream with id `target_id`; its reply header
        (`found`: whether the daemon had it). A dream of this client's that another
        thread waits for is cancelled on its own connection, which reaches the daemon
        running it, also through a load balancer; once it has ended, `found` is false
        without asking, and from the dream's own thread (a progress or frame
        callback) it is sent when the callback returns, `found` true at once. Any
        other dream is cancelled at `daemon`, the address its replies name (their
        `daemon` key), else at the endpoint."""
        flight = self._flights.get(target_id)
        if flight is not None:
            return flight.cancel(target_id, self.timeout if timeout is None else timeout,
                                 lambda: self._unavailable(f"no answer to cancel within {self._seconds(timeout)}"))
        endpoint = check_endpoint(daemon, "the dream's daemon") if daemon else None
        return self._call("cancel", timeout, endpoint, target=target_id)

    def _call(self, op, timeout, endpoint=None, **fields):
        """Lazy pirate: send, wait a little, and on silence throw the socket away
        and try again on a fresh one, until the deadline. `endpoint`: another
        address than the client's (a dream's daemon), with the same keys."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        request_id = new_request_id()
        attempt = _FIRST_ATTEMPT
        self._problem = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._unavailable(f"no answer to {op} within {self._seconds(timeout)}", endpoint)
            with self._socket(endpoint) as socket:
                if self._send(socket, protocol.request(op, request_id, **fields), None, min(attempt, remaining)):
                    reply = self._receive(socket, request_id, min(attempt, remaining))
                    if reply is not None:
                        return _final(reply[0])
                self._problem = getattr(socket, "problem", None) or self._problem
            attempt = min(attempt * 2, _LONGEST_ATTEMPT)

    # -- dreams: sent once, answered with progress and one final reply ----------------------------

    def dream(self, pixels, width, height, channels, dtype="uint8", params=None, progress=None,
              timeout=None, cancel_check=None, request_id=None, preview=None, guide=None):
        """Dream a raw image: `pixels` are row-major, interleaved, little-endian
        samples (`dtype` uint8, uint16 or float32 in [0, 1]). Returns a
        DreamResult with pixels of the same layout.

        `progress(event)` gets each progress event (octave, octaves, step, steps,
        fraction), heartbeats included: a repeat of the last one, or, while the
        dream waits in the queue, one with octave 0 and `queued` = its place.
        `preview`: None (no previews), or {"interval": seconds, "max_side":
        pixels}, either key optional (docs/protocol.md, "Previews"); then some
        events carry event["preview"]: width, height, channels (3), dtype
        ("uint8"), format ("raw") and `pixels`, the RGB bytes of the dream so far.
        `cancel_check()` is asked about ten times a second; when it
        returns true the dream is cancelled on the daemon and DaemonError
        CANCELLED is raised. Ctrl-C (KeyboardInterrupt) cancels it too, then
        propagates as DreamInterrupted. `timeout`: see DreamClient; a dream
        the daemon says nothing about for that long is lost (DaemonUnavailable).
        `guide`: None, a numpy array (sent raw), an image file's bytes (sent
        encoded) or, without numpy (GIMP's Python), a tuple (pixels, width,
        height, channels, dtype) of raw samples laid out as for `pixels`: the
        dream grows the features the guide has (docs/protocol.md, "Guide")."""
        image = _raw_description(pixels, width, height, channels, dtype)
        return self._dream(image, pixels, params, progress, timeout, cancel_check, request_id, preview, guide)

    def dream_encoded(self, data, params=None, progress=None, timeout=None, cancel_check=None, request_id=None,
                      preview=None, guide=None):
        """Dream an encoded image (PNG, JPEG, WebP, TIFF bytes); the result's pixels are PNG bytes."""
        return self._dream({"format": ENCODED}, data, params, progress, timeout, cancel_check, request_id, preview,
                           guide)

    def dream_array(self, array, params=None, return_result=False, **options):
        """Dream a numpy array (H x W or H x W x C; uint8, uint16 or float32 in
        [0, 1]) and return an array of the same shape and dtype, or
        (array, DreamResult) with `return_result` (for its stats). Other
        options as for dream()."""
        import numpy

        original_shape = array.shape
        array = _as_raw(array)
        height, width, channels = array.shape
        result = self.dream(array, width, height, channels, array.dtype.name, params, **options)
        dreamed = numpy.frombuffer(result.pixels, dtype=array.dtype).reshape(original_shape).copy()
        return (dreamed, result) if return_result else dreamed

    def _dream(self, image, payload, params, progress, timeout, cancel_check, request_id, preview, guide=None):
        silence = self.timeout if timeout is None else timeout
        request_id = request_id or new_request_id()
        asked, guide_payload = _options(preview, guide)
        self._problem = None
        header = protocol.request("dream", request_id, params=params or {}, image=image, progress=True, **asked)
        with self._socket() as socket, self._in_flight(request_id) as flight:
            if not self._send(socket, header, payload, silence, guide_payload):
                raise self._unavailable(f"could not send the dream within {self._seconds(timeout)}")
            try:
                return _dream_result(*self._await_dream(socket, request_id, progress, silence, cancel_check, flight))
            except KeyboardInterrupt:
                final = self._cancel_on(socket, request_id, CANCEL_GRACE)
                raise DreamInterrupted(self.endpoint, stopped=final is not None) from None

    def _await_dream(self, socket, request_id, progress, silence, cancel_check, flight):
        """Progress events until the next other message about the dream, its final
        reply or a zoom's frame: that message's (header, payload). The daemon sends
        a dream that asked for progress a heartbeat at least every second, queued or running
        (docs/protocol.md, section 8), so `silence` seconds without a word about
        this dream mean it is lost: the daemon died, or restarted and forgot it.
        Only the dream's own messages can tell: a restarted daemon busy with
        other clients' dreams looks, to a ping, just like one busy with ours.
        `flight`: where another thread's cancel() waits to be sent."""
        ping_timeout, silence = min(silence, _LOST_PING), max(silence, _MIN_DREAM_SILENCE)
        heard, daemon = time.monotonic(), None
        while True:
            if flight.asked.is_set() or (cancel_check is not None and cancel_check()):
                final = self._cancel_on(socket, request_id, max(silence, CANCEL_GRACE), flight)
                if final is not None and final.get("type") == "error":
                    _final(final)
                raise DaemonError(CANCELLED, "the dream was cancelled", request_id)
            remaining = heard + silence - time.monotonic()
            if remaining <= 0:
                raise self._lost(silence, ping_timeout, daemon)
            reply = self._receive(socket, request_id, min(_POLL_SLICE, remaining))  # slices: cancels are looked at
            if reply is None:
                continue
            heard = time.monotonic()
            header, payload = reply
            daemon = header.get("daemon", daemon)  # the daemon that took it (older daemons do not say)
            if header.get("type") != "progress":
                return header, payload
            if progress is not None:
                progress(_with_preview(header, payload))

    # -- zooms: a dream of many frames, each sent as soon as it is done --------------------------

    def zoom_frames(self, pixels, width, height, channels, dtype="uint8", zoom=None, params=None, progress=None,
                    timeout=None, cancel_check=None, request_id=None, preview=None, guide=None):
        """The infinite zoom of a raw image (laid out as for dream()): yields a
        ZoomFrame as each frame arrives, in order; the generator's return value
        (StopIteration.value) is the ZoomResult. `zoom`: the request's zoom map,
        {"frames", "scale", "rotate", "first_index", "frame_delay_ms"}, every key
        optional (docs/protocol.md, "zoom"). Progress events carry `frame` and
        `frames` too. Frames already yielded are the caller's whatever happens
        next: a cancel (cancel_check, Ctrl-C) or a lost daemon raises as for
        dream(), and a caller that stops iterating early (break, its own error)
        cancels the zoom on the daemon. `guide`: as for dream(), for every frame."""
        image = _raw_description(pixels, width, height, channels, dtype)
        return self._zoom(image, pixels, zoom, params, progress, timeout, cancel_check, request_id, preview, guide)

    def zoom(self, pixels, width, height, channels, dtype="uint8", on_frame=None, **options):
        """zoom_frames() run to the end: `on_frame(frame)` gets each ZoomFrame as it
        arrives; returns the ZoomResult. A failure in on_frame, Ctrl-C included,
        cancels the zoom on the daemon and propagates."""
        return _run_zoom(self.zoom_frames(pixels, width, height, channels, dtype, **options), on_frame)

    def zoom_array(self, array, on_frame=None, **options):
        """zoom() of a numpy array (as for dream_array); frame.array() gives each frame as one."""
        array = _as_raw(array)
        height, width, channels = array.shape
        return self.zoom(array, width, height, channels, array.dtype.name, on_frame=on_frame, **options)

    def _zoom(self, image, payload, zoom, params, progress, timeout, cancel_check, request_id, preview, guide=None):
        silence = self.timeout if timeout is None else timeout
        request_id = request_id or new_request_id()
        asked, guide_payload = _options(preview, guide)
        self._problem = None
        header = protocol.request("zoom", request_id, params=params or {}, image=image, zoom=zoom or {},
                                  progress=True, **asked)
        with self._socket() as socket, self._in_flight(request_id) as flight:
            if not self._send(socket, header, payload, silence, guide_payload):
                raise self._unavailable(f"could not send the zoom within {self._seconds(timeout)}")
            while True:
                try:
                    reply, data = self._await_dream(socket, request_id, progress, silence, cancel_check, flight)
                except KeyboardInterrupt:
                    final = self._cancel_on(socket, request_id, CANCEL_GRACE)
                    raise DreamInterrupted(self.endpoint, stopped=final is not None) from None
                if reply.get("type") != "frame":
                    return _zoom_result(reply)
                try:
                    yield ZoomFrame(index=reply.get("index"), frames=reply.get("frames"), pixels=bytes(data),
                                    image=reply.get("image", {}), header=reply)
                except GeneratorExit:  # the caller stopped reading: the zoom stops too
                    self._cancel_on(socket, request_id, CANCEL_GRACE)
                    raise

    def _lost(self, silence, ping_timeout, daemon):
        """The error for a dream the daemon stopped talking about. A ping tells
        the user which way it was lost; it cannot tell whether the dream lives.
        `daemon`: the one that took the dream, as its replies named it; behind a
        load balancer the ping may reach another."""
        try:
            pong = self.ping(timeout=ping_timeout)
        except DaemonUnavailable:
            return self._unavailable(
                f"the daemon stopped answering during the dream (silent for {silence:g} s); it was not resent")
        answered = pong.get("daemon")
        if daemon and answered and answered != daemon:
            return DaemonUnavailable(daemon, (
                f"the daemon that took this dream, {daemon}, has sent nothing about it for {silence:g} s, and "
                f"{self.endpoint} now reaches another one, {answered}: the dream's daemon stopped or restarted; "
                "the dream was not resent"))
        return DaemonUnavailable(self.endpoint, (
            f"the daemon at {self.endpoint} answers, but has sent nothing about this dream for {silence:g} s: "
            "it lost it (restarted?); the dream was not resent"))

    def _cancel_on(self, socket, request_id, grace, flight=None):
        """Cancel on the dream's own socket and wait up to `grace` seconds for the
        dream's final reply header (None if it did not come), so that the caller
        knows the job has stopped. The daemon's `cancelled` reply goes to the
        thread whose cancel() asked for it (`flight`)."""
        cancel_id = new_request_id()
        if not self._send(socket, protocol.request("cancel", cancel_id, target=request_id), None, grace):
            return None
        deadline = time.monotonic() + grace
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self._receive(socket, request_id, remaining, also=cancel_id)
            if reply is None:
                return None
            if reply[0].get("id") == cancel_id:
                if flight is not None:
                    flight.answer(reply[0])
            elif reply[0].get("type") not in ("progress", "frame"):  # a frame done meanwhile is not the end
                return reply[0]
        return None

    @contextlib.contextmanager
    def _in_flight(self, request_id):
        """While a dream is waited for: its _Flight, where cancel() from another thread finds it."""
        flight = _Flight()
        mine = self._flights.setdefault(request_id, flight) is flight  # a second dream under one id: the first's
        try:
            yield flight
        finally:
            if mine:
                del self._flights[request_id]
            flight.done.set()

    # -- sockets and frames ------------------------------------------------------------------------

    def _socket(self, endpoint=None):
        transport = self._zmq
        endpoint = endpoint or self.endpoint
        socket = self._context.socket(transport.DEALER)
        try:
            socket.setsockopt(transport.LINGER, 0)  # an unanswered request must not keep the process alive
            socket.setsockopt(transport.IPV6, 1)  # so that tcp://[::1]:PORT works; IPv4 addresses are unaffected
            socket.setsockopt(transport.SNDTIMEO, _ms(max(self.timeout, _MIN_DREAM_SILENCE)))  # zmtp: a stalled send
            if self._server_key:
                public, secret = self._client_keys
                socket.curve_serverkey = self._server_key
                socket.curve_publickey = public
                socket.curve_secretkey = secret
            socket.connect(endpoint)
        except (zmtp.ZMTPError, *(() if zmq is None else (zmq.ZMQError,))) as error:
            # what the checks cannot foresee: an ipc path too long, no CURVE in libzmq
            socket.close()
            reason = zmq.strerror(error.errno) if zmq is not None and isinstance(error, zmq.ZMQError) else error
            raise SettingsError(f"cannot connect to {endpoint}: {reason}") from None
        return socket

    def _send(self, socket, header, payload, timeout, guide_payload=None):
        """Send [empty delimiter, header, payload?, guide's payload?]; False if it cannot leave in time."""
        if not socket.poll(_ms(timeout), self._zmq.POLLOUT):
            self._problem = getattr(socket, "problem", None) or self._problem
            return False
        frames = [b"", protocol.pack(header)] + [frame for frame in (payload, guide_payload) if frame is not None]
        try:
            socket.send_multipart(frames, flags=self._zmq.NOBLOCK)
        except zmtp.ZMTPError as error:  # zmtp writes at once: the daemon went away or stopped reading
            self._problem = str(error)
            return False
        return True

    def _receive(self, socket, request_id, timeout, also=None):
        """(header, payload) of the next reply about `request_id` (or `also`), or
        None after `timeout` seconds. Replies about other ids (a cancel's
        confirmation, a late answer to an earlier attempt) are skipped."""
        deadline = time.monotonic() + timeout
        while socket.poll(_ms(deadline - time.monotonic()), self._zmq.POLLIN):
            frames = socket.recv_multipart()
            if frames and not frames[0]:
                frames = frames[1:]  # the empty delimiter we sent comes back
            if not frames:
                continue
            try:
                header = protocol.unpack(frames[0])
            except protocol.ProtocolError:
                continue  # not from a protocol-v1 daemon; keep waiting for one that is
            if header.get("id") in (request_id, also, None):
                return header, frames[1] if len(frames) > 1 else b""
        return None

    def _unavailable(self, what, endpoint=None):
        endpoint = endpoint or self.endpoint
        hint = "" if self._server_key is None else " (or the CURVE keys do not match)"
        if self._problem:  # what zmtp saw: refused, a bad greeting, a daemon that wants CURVE
            hint += f"; {self._problem}"
        return DaemonUnavailable(endpoint, f"no daemon at {endpoint}: {what}{hint}")

    def _seconds(self, timeout):
        return f"{self.timeout if timeout is None else timeout:g} s"

    def close(self):
        """Never blocks: a socket still open (another thread's request, cut
        short) is closed too, and unsent messages are dropped."""
        self._context.destroy(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def new_request_id():
    return uuid.uuid4().hex


class _Flight:
    """A dream one thread waits for, that another thread's cancel() may stop. A
    ZeroMQ socket belongs to one thread, so the cancel is handed over (`asked`)
    and the dreaming thread sends it on the dream's socket; its reply comes back
    here (`answer`). `done`: the dream is no longer waited for."""

    def __init__(self):
        self.asked = threading.Event()
        self.done = threading.Event()
        self.reply = None
        self.thread = threading.get_ident()  # the dreaming thread: it cannot wait for itself

    def answer(self, reply):
        self.reply = reply
        self.done.set()

    def cancel(self, target_id, timeout, unanswered):
        """The daemon's `cancelled` reply; found false when the dream ended first, true at once from the dreaming
        thread itself; unanswered() raised after `timeout` seconds without any."""
        self.asked.set()
        if threading.get_ident() == self.thread:  # asked from a callback: sent once it returns
            return {"type": "cancelled", "id": None, "target": target_id, "found": True}
        if not self.done.wait(timeout):
            raise unanswered()
        return self.reply or {"type": "cancelled", "id": None, "target": target_id, "found": False}


def _final(header):
    if header.get("type") == "error":
        raise DaemonError(header.get("code", INTERNAL), header.get("message", ""), header.get("id"))
    return header


def _dream_result(header, payload):
    header = _final(header)
    if header.get("type") != "result":
        raise DaemonError(BAD_REQUEST, f"expected a result, the daemon sent {header.get('type')!r}",
                          header.get("id"))
    return DreamResult(pixels=bytes(payload), image=header.get("image", {}), stats=header.get("stats", {}),
                       header=header)


@dataclass
class ZoomFrame:
    """One frame of a zoom, as it arrived: `index` (1 is the first after the start),
    `frames` (the zoom's last index), `pixels` laid out as `image` says."""

    index: int
    frames: int
    pixels: bytes
    image: dict
    header: dict = field(default_factory=dict)

    def array(self):
        """The frame as an H x W x C numpy array (numpy needed; an encoded zoom's PNG frame needs Pillow)."""
        if self.image.get("format") == ENCODED:
            import io

            from .image_files import decode_image

            return decode_image(io.BytesIO(self.pixels))
        import numpy

        dtype = numpy.dtype(self.image["dtype"]).newbyteorder("<")
        return numpy.frombuffer(self.pixels, dtype).reshape(self.image["height"], self.image["width"],
                                                             self.image["channels"])


@dataclass
class ZoomResult:
    frames_sent: int
    stats: dict = field(default_factory=dict)
    header: dict = field(default_factory=dict)


def _run_zoom(frames, on_frame):
    """Drain a zoom_frames generator into on_frame; its ZoomResult. Closing it on the
    way out cancels a zoom that on_frame (or Ctrl-C inside it) cut short."""
    try:
        while True:
            frame = next(frames)
            if on_frame is not None:
                on_frame(frame)
    except StopIteration as end:
        return end.value
    finally:
        frames.close()


def _zoom_result(header):
    header = _final(header)
    if header.get("type") != "result":
        raise DaemonError(BAD_REQUEST, f"expected a frame or a result, the daemon sent {header.get('type')!r}",
                          header.get("id"))
    return ZoomResult(frames_sent=header.get("frames_sent", 0), stats=header.get("stats", {}), header=header)


def _raw_description(pixels, width, height, channels, dtype):
    """The `image` description of raw `pixels`; ValueError if they do not fit it."""
    image = protocol.raw_image(width, height, channels, dtype)
    try:
        expected = protocol.raw_payload_size(image)
    except protocol.ProtocolError as error:
        raise ValueError(error.message) from None
    size = memoryview(pixels).nbytes
    if size != expected:
        raise ValueError(f"{width}x{height}x{channels} {dtype} pixels take {expected} bytes, got {size}")
    return image


def _options(preview, guide):
    """A dream's or zoom's optional header keys (`preview`, `guide`) and the guide's payload (None without one)."""
    asked = {} if preview is None else {"preview": preview}  # the daemon checks it (BAD_REQUEST)
    if guide is None:
        return asked, None
    asked["guide"], guide_payload = _guide_frame(guide)
    return asked, guide_payload


def _guide_frame(guide):
    """(`guide` description, payload) of a guide given as a numpy array (raw), an image file's bytes (encoded)
    or a tuple (pixels, width, height, channels, dtype) of raw samples."""
    if isinstance(guide, (bytes, bytearray, memoryview)):
        return {"format": ENCODED}, guide
    if isinstance(guide, tuple):
        pixels, width, height, channels, dtype = guide
        return _raw_description(pixels, width, height, channels, dtype), pixels
    array = _as_raw(guide)
    height, width, channels = array.shape
    return _raw_description(array, width, height, channels, array.dtype.name), array


def _as_raw(array):
    """A numpy image (H x W or H x W x C) as a raw payload lays it out: H x W x C, contiguous, little-endian."""
    import numpy

    shaped = array[:, :, None] if array.ndim == 2 else array
    if shaped.ndim != 3:
        raise ValueError(f"expected an H x W or H x W x C array, got shape {array.shape}")
    return numpy.ascontiguousarray(shaped, dtype=shaped.dtype.newbyteorder("<"))


def _with_preview(event, frame):
    """A progress event with its preview's pixels (the second frame) in event["preview"];
    a preview whose frame does not fit its description is left out (it shows nothing)."""
    description = event.get("preview")
    if description is None:
        return event
    try:
        fits = protocol.raw_payload_size(description) == len(frame) and description.get("channels") == 3
    except protocol.ProtocolError:
        fits = False
    if not fits:
        return {key: value for key, value in event.items() if key != "preview"}
    return {**event, "preview": {**description, "pixels": frame}}


def _ms(seconds):
    return max(0, int(seconds * 1000))
