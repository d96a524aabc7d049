"""DreamClient: talk to deepdream-daemon over the wire protocol v1.

Only pyzmq, msgpack and the standard library: this module also runs inside
GIMP's own Python, copied beside the plug-in as a small `daemon` package
(__init__.py, protocol.py, client.py). numpy is used only by dream_array, and
only when the caller has it.

Every request gets its own DEALER socket, so a client object may be shared by
threads (one can cancel() what another is dreaming) and a socket that timed
out is simply thrown away (the zguide's lazy pirate). Idempotent requests
(ping, info, cancel) are retried on a fresh socket until their deadline, which
carries them across a daemon restart; a dream is never resent."""

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from . import protocol

DEFAULT_TIMEOUT = 10.0
CANCEL_GRACE = 3.0  # how long an interrupted dream waits to see the daemon confirm the cancel
_FIRST_ATTEMPT = 0.25  # lazy-pirate attempts start short and double: a live daemon answers in ms
_LONGEST_ATTEMPT = 2.0
_POLL_SLICE = 0.1  # how often a dream looks at cancel_check while it waits


class DaemonError(Exception):
    """The daemon answered with an `error` reply; `code` is the protocol's error code."""

    def __init__(self, code, message, request_id=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class DaemonUnavailable(Exception):
    """No daemon answered in time (not running, wrong endpoint, wrong keys, or it died)."""

    def __init__(self, endpoint, message):
        super().__init__(message)
        self.endpoint = endpoint


@dataclass
class DreamResult:
    pixels: bytes  # raw bytes laid out as `image` says, or PNG bytes for an encoded request
    image: dict
    stats: dict = field(default_factory=dict)
    header: dict = field(default_factory=dict)


def config_path():
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "deepdream" / "client.json"


def load_config():
    """The installed client settings ({} when there are none or they cannot be read:
    a broken config file must not stop a client that was told its endpoint)."""
    try:
        settings = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def resolve_endpoint(explicit=None):
    """explicit, else $DEEPDREAM_ENDPOINT, else the config file's "endpoint", else the default."""
    return (explicit or os.environ.get("DEEPDREAM_ENDPOINT") or load_config().get("endpoint")
            or protocol.DEFAULT_ENDPOINT)


def resolve_server_key(explicit=None):
    """The daemon's CURVE public key, as for the endpoint: explicit, else
    $DEEPDREAM_SERVER_KEY, else the config file's "server_key"; None means no
    CURVE. The value is the Z85 key itself or the path of its key file (the
    daemon's server.key)."""
    key = explicit or os.environ.get("DEEPDREAM_SERVER_KEY") or load_config().get("server_key")
    if not key:
        return None
    if isinstance(key, bytes):
        key = key.decode("ascii")
    if len(key) == 40 and not os.path.exists(key):
        return key.encode("ascii")
    return _load_key_file(key)[0]


def resolve_client_keys(explicit=None):
    """This client's CURVE (public, secret) pair: explicit (a pair, or the path
    of a .key_secret file made by zmq.auth), else $DEEPDREAM_CLIENT_KEY, else the
    config file's "client_key"; None lets a fresh pair be made per client (enough
    for a daemon that has no list of authorized clients)."""
    keys = explicit or os.environ.get("DEEPDREAM_CLIENT_KEY") or load_config().get("client_key")
    if not keys:
        return None
    if isinstance(keys, (tuple, list)):
        return tuple(key.encode("ascii") if isinstance(key, str) else key for key in keys)
    public, secret = _load_key_file(keys)
    if secret is None:
        raise ValueError(f"{keys} holds no secret key; give the .key_secret file")
    return public, secret


def _load_key_file(path):
    from zmq.auth import load_certificate  # only now: plain-TCP clients never need it

    return load_certificate(os.path.expanduser(os.fspath(path)))


class DreamClient:
    def __init__(self, endpoint=None, timeout=DEFAULT_TIMEOUT, curve_server_key=None, curve_client_keys=None):
        """`timeout`: seconds a ping/info/cancel may take in all (retries included),
        and the silence after which a dream checks that the daemon is still alive.
        `curve_server_key`: the daemon's CURVE public key (Z85 or key file path);
        `curve_client_keys`: this client's (public, secret) pair or its secret key file,
        not given: see resolve_client_keys."""
        self.endpoint = resolve_endpoint(endpoint)
        self.timeout = timeout
        self._server_key = resolve_server_key(curve_server_key)
        self._client_keys = None
        if self._server_key:
            self._client_keys = resolve_client_keys(curve_client_keys) or zmq.curve_keypair()
        self._context = zmq.Context()

    # -- requests that may be repeated ------------------------------------------------------

    def ping(self, timeout=None):
        """The daemon's `pong` header: state, busy, queued, model, weights, device, ..."""
        return self._call("ping", timeout)

    def info(self, timeout=None):
        """The `info` header: layers, defaults (params), limits."""
        return self._call("info", timeout)

    def cancel(self, target_id, timeout=None):
        """Ask the daemon to stop the dream with id `target_id`; its reply header."""
        return self._call("cancel", timeout, target=target_id)

    def _call(self, op, timeout, **fields):
        """Lazy pirate: send, wait a little, and on silence throw the socket away
        and try again on a fresh one, until the deadline."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        request_id = new_request_id()
        attempt = _FIRST_ATTEMPT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._unavailable(f"no answer to {op} within {self._seconds(timeout)}")
            with self._socket() as socket:
                if self._send(socket, protocol.request(op, request_id, **fields), None, min(attempt, remaining)):
                    reply = self._receive(socket, request_id, min(attempt, remaining))
                    if reply is not None:
                        return _final(reply[0])
            attempt = min(attempt * 2, _LONGEST_ATTEMPT)

    # -- dreams: sent once, answered with progress and one final reply ----------------------------

    def dream(self, pixels, width, height, channels, dtype="uint8", params=None, progress=None,
              timeout=None, cancel_check=None, request_id=None):
        """Dream a raw image: `pixels` are row-major, interleaved, little-endian
        samples (`dtype` uint8, uint16 or float32 in [0, 1]). Returns a
        DreamResult with pixels of the same layout.

        `progress(event)` gets each progress event (octave, octaves, step, steps,
        fraction), heartbeats included: a repeat of the last one, or, while the
        dream waits in the queue, one with octave 0 and `queued` = its place.
        `cancel_check()` is asked about ten times a second; when it
        returns true the dream is cancelled on the daemon and DaemonError
        CANCELLED is raised. Ctrl-C (KeyboardInterrupt) cancels it too, then
        propagates. `timeout`: see DreamClient."""
        image = protocol.raw_image(width, height, channels, dtype)
        try:
            expected = protocol.raw_payload_size(image)
        except protocol.ProtocolError as error:
            raise ValueError(error.message) from None
        size = memoryview(pixels).nbytes
        if size != expected:
            raise ValueError(f"{width}x{height}x{channels} {dtype} pixels take {expected} bytes, got {size}")
        return self._dream(image, pixels, params, progress, timeout, cancel_check, request_id)

    def dream_encoded(self, data, params=None, progress=None, timeout=None, cancel_check=None, request_id=None):
        """Dream an encoded image (PNG, JPEG, WebP, TIFF bytes); the result's pixels are PNG bytes."""
        return self._dream({"format": "encoded"}, data, params, progress, timeout, cancel_check, request_id)

    def dream_array(self, array, params=None, return_result=False, **options):
        """Dream a numpy array (H x W or H x W x C; uint8, uint16 or float32 in
        [0, 1]) and return an array of the same shape and dtype, or
        (array, DreamResult) with `return_result` (for its stats). Other
        options as for dream()."""
        import numpy

        original_shape = array.shape
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ValueError(f"expected an H x W or H x W x C array, got shape {original_shape}")
        little_endian = array.dtype.newbyteorder("<")
        array = numpy.ascontiguousarray(array, dtype=little_endian)
        height, width, channels = array.shape
        result = self.dream(array, width, height, channels, array.dtype.name, params, **options)
        dreamed = numpy.frombuffer(result.pixels, dtype=little_endian).reshape(original_shape).copy()
        return (dreamed, result) if return_result else dreamed

    def _dream(self, image, payload, params, progress, timeout, cancel_check, request_id):
        silence = self.timeout if timeout is None else timeout
        request_id = request_id or new_request_id()
        header = protocol.request("dream", request_id, params=params or {}, image=image, progress=True)
        with self._socket() as socket:
            if not self._send(socket, header, payload, silence):
                raise self._unavailable(f"could not send the dream within {self._seconds(timeout)}")
            try:
                return self._await_dream(socket, request_id, progress, silence, cancel_check)
            except KeyboardInterrupt:
                self._cancel_on(socket, request_id, CANCEL_GRACE)
                raise

    def _await_dream(self, socket, request_id, progress, silence, cancel_check):
        """Progress events until the final reply. Silence alone does not end a
        dream: a big step or a queue ahead can be quiet for long, so after
        `silence` seconds the daemon is pinged, and only a daemon that does not
        answer, or answers with nothing running or queued, gives up the wait."""
        quiet_since = time.monotonic()
        while True:
            if cancel_check is not None and cancel_check():
                final = self._cancel_on(socket, request_id, max(silence, CANCEL_GRACE))
                if final is not None and final.get("type") == "error":
                    _final(final)
                raise DaemonError("CANCELLED", "the dream was cancelled", request_id)
            slice_s = _POLL_SLICE if cancel_check is not None else silence
            reply = self._receive(socket, request_id, min(slice_s, max(0.0, quiet_since + silence - time.monotonic())))
            if reply is not None:
                header, payload = reply
                if header.get("type") == "progress":
                    quiet_since = time.monotonic()
                    if progress is not None:
                        progress(header)
                    continue
                return _dream_result(header, payload)
            if time.monotonic() - quiet_since >= silence:
                self._check_still_working(silence)
                quiet_since = time.monotonic()

    def _check_still_working(self, silence):
        try:
            pong = self.ping(timeout=silence)
        except DaemonUnavailable:
            raise self._unavailable(
                f"the daemon stopped answering during the dream (silent for {silence:g} s); it was not resent"
            ) from None
        if not pong.get("busy") and not pong.get("queued"):
            raise self._unavailable(
                "the daemon answers but has no dream running or queued: it lost this one "
                "(restarted?); the dream was not resent"
            )

    def _cancel_on(self, socket, request_id, grace):
        """Cancel on the dream's own socket and wait up to `grace` seconds for the
        dream's final reply header (None if it did not come), so that the caller
        knows the job has stopped."""
        cancel = protocol.request("cancel", new_request_id(), target=request_id)
        if not self._send(socket, cancel, None, grace):
            return None
        deadline = time.monotonic() + grace
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self._receive(socket, request_id, remaining)
            if reply is None:
                return None
            if reply[0].get("type") != "progress":
                return reply[0]
        return None

    # -- sockets and frames ------------------------------------------------------------------------

    def _socket(self):
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)  # an unanswered request must not keep the process alive
        if self._server_key:
            public, secret = self._client_keys
            socket.curve_serverkey = self._server_key
            socket.curve_publickey = public
            socket.curve_secretkey = secret
        socket.connect(self.endpoint)
        return socket

    @staticmethod
    def _send(socket, header, payload, timeout):
        """Send [empty delimiter, header, payload?]; False if it cannot leave in time."""
        if not socket.poll(_ms(timeout), zmq.POLLOUT):
            return False
        frames = [b"", protocol.pack(header)] + ([payload] if payload is not None else [])
        socket.send_multipart(frames, flags=zmq.NOBLOCK)
        return True

    @staticmethod
    def _receive(socket, request_id, timeout):
        """(header, payload) of the next reply about `request_id`, or None after
        `timeout` seconds. Replies about other ids (a cancel's confirmation, a
        late answer to an earlier attempt) are skipped."""
        deadline = time.monotonic() + timeout
        while socket.poll(_ms(deadline - time.monotonic()), zmq.POLLIN):
            frames = socket.recv_multipart()
            if frames and not frames[0]:
                frames = frames[1:]  # the empty delimiter we sent comes back
            if not frames:
                continue
            try:
                header = protocol.unpack(frames[0])
            except protocol.ProtocolError:
                continue  # not from a protocol-v1 daemon; keep waiting for one that is
            if header.get("id") in (request_id, None):
                return header, frames[1] if len(frames) > 1 else b""
        return None

    def _unavailable(self, what):
        hint = "" if self._server_key is None else " (or the CURVE keys do not match)"
        return DaemonUnavailable(self.endpoint, f"no daemon at {self.endpoint}: {what}{hint}")

    def _seconds(self, timeout):
        return f"{self.timeout if timeout is None else timeout:g} s"

    def close(self):
        self._context.term()  # every socket is closed by the time a call returns

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def new_request_id():
    return uuid.uuid4().hex


def _final(header):
    if header.get("type") == "error":
        raise DaemonError(header.get("code", "INTERNAL"), header.get("message", ""), header.get("id"))
    return header


def _dream_result(header, payload):
    header = _final(header)
    if header.get("type") != "result":
        raise DaemonError("BAD_REQUEST", f"expected a result, the daemon sent {header.get('type')!r}",
                          header.get("id"))
    return DreamResult(pixels=bytes(payload), image=header.get("image", {}), stats=header.get("stats", {}),
                       header=header)


def _ms(seconds):
    return max(0, int(seconds * 1000))
