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

Its settings (endpoint, keys, transport) come checked from settings.py before
any socket exists. close() never blocks."""

import contextlib
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import NamedTuple

try:
    import zmq
except ImportError:  # GIMP's Python on Windows, macOS, Flatpak, Snap: zmtp.py stands in
    zmq = None

from . import protocol, zmtp
from deepdream_common.quoting import shown
from .settings import (SettingsError, check_endpoint, lookup, relay_advice, resolve_client_keys, resolve_endpoint,
                       resolve_server_key, resolve_transport)
from deepdream_common.vocabulary import BAD_REQUEST, CANCELLED, ENCODED, INTERNAL

DEFAULT_TIMEOUT = 10.0
CANCEL_GRACE = 3.0  # how long an interrupted dream waits to see the daemon confirm the cancel
_FIRST_ATTEMPT = 0.25  # lazy-pirate attempts start short and double: a live daemon answers in ms
_LONGEST_ATTEMPT = 2.0
_POLL_SLICE = 0.1  # how often a dream looks at cancel_check while it waits
_MIN_DREAM_SILENCE = 3.0  # three missed heartbeats (the daemon sends one a second): one late one is no loss
_LOST_PING = 2.0  # the ping that tells a lost dream's user whether the daemon is still there


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
class DreamRequest:
    """What a dream or a zoom asks besides its image (DreamClient.dream() says what each does)."""
    params: dict = None
    progress: object = None  # progress(event)
    timeout: float = None  # the longest silence; None: the client's
    cancel_check: object = None  # cancel_check() -> true to cancel
    request_id: str = None  # None: a new one
    preview: dict = None
    guide: object = None

    def __post_init__(self):
        self.request_id = self.request_id or new_request_id()


@dataclass
class DreamResult:
    pixels: bytes  # raw bytes laid out as `image` says, or PNG bytes for an encoded request
    image: dict
    stats: dict = field(default_factory=dict)
    header: dict = field(default_factory=dict)


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
        curve_asked = lookup(curve_server_key, "DEEPDREAM_SERVER_KEY", "server_key")[0]
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

    def dream(self, pixels, width, height, channels, dtype="uint8", params=None, **options):
        """Dream a raw image: `pixels` are row-major, interleaved, little-endian
        samples (`dtype` uint8, uint16 or float32 in [0, 1]). Returns a
        DreamResult with pixels of the same layout. `options` are a
        DreamRequest's: progress, timeout, cancel_check, request_id, preview,
        guide.

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
        encoded) or, without numpy (GIMP's Python), a RawImage (or the same
        five values as a tuple) of raw samples laid out as for `pixels`: the
        dream grows the features the guide has (docs/protocol.md, "Guide")."""
        image = _raw_description(pixels, width, height, channels, dtype)
        return self._dream(image, pixels, DreamRequest(params, **options))

    def dream_encoded(self, data, params=None, **options):
        """Dream an encoded image (PNG, JPEG, WebP, TIFF bytes); the result's pixels are PNG bytes. `options`
        as for dream()."""
        return self._dream({"format": ENCODED}, data, DreamRequest(params, **options))

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

    def _dream(self, image, payload, request):
        with self._sent("dream", image, payload, request) as (socket, flight):
            return _dream_result(*self._next_reply(socket, request, flight))

    @contextlib.contextmanager
    def _sent(self, op, image, payload, request, **extra):
        """A dream's or zoom's request sent on a socket of its own: (socket, flight) while it runs."""
        asked, guide_payload = _options(request.preview, request.guide)
        self._problem = None
        header = protocol.request(op, request.request_id, params=request.params or {}, image=image, **extra,
                                  progress=True, **asked)
        with self._socket() as socket, self._in_flight(request.request_id) as flight:
            if not self._send(socket, header, payload, self._silence(request), guide_payload):
                raise self._unavailable(f"could not send the {op} within {self._seconds(request.timeout)}")
            yield socket, flight

    def _next_reply(self, socket, request, flight):
        """The dream's next progress-free reply (a frame, or its end); Ctrl-C cancels it on the daemon first."""
        try:
            return self._await_dream(socket, request.request_id, request.progress, self._silence(request),
                                     request.cancel_check, flight)
        except KeyboardInterrupt:
            final = self._cancel_on(socket, request.request_id, CANCEL_GRACE)
            raise DreamInterrupted(self.endpoint, stopped=final is not None) from None

    def _silence(self, request):
        return self.timeout if request.timeout is None else request.timeout

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

    def zoom_frames(self, pixels, width, height, channels, dtype="uint8", zoom=None, params=None, **options):
        """The infinite zoom of a raw image (laid out as for dream()): yields a
        ZoomFrame as each frame arrives, in order; the generator's return value
        (StopIteration.value) is the ZoomResult. `zoom`: the request's zoom map,
        {"frames", "scale", "rotate", "first_index", "frame_delay_ms"}, every key
        optional (docs/protocol.md, "zoom"). Progress events carry `frame` and
        `frames` too. Frames already yielded are the caller's whatever happens
        next: a cancel (cancel_check, Ctrl-C) or a lost daemon raises as for
        dream(), and a caller that stops iterating early (break, its own error)
        cancels the zoom on the daemon. `options` as for dream(); the guide serves every frame."""
        image = _raw_description(pixels, width, height, channels, dtype)
        return self._zoom(image, pixels, zoom, DreamRequest(params, **options))

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

    def _zoom(self, image, payload, zoom, request):
        with self._sent("zoom", image, payload, request, zoom=zoom or {}) as (socket, flight):
            while True:
                reply, data = self._next_reply(socket, request, flight)
                if reply.get("type") != "frame":
                    return _zoom_result(reply)
                try:
                    yield ZoomFrame(index=reply.get("index"), frames=reply.get("frames"), pixels=bytes(data),
                                    image=reply.get("image", {}), header=reply)
                except GeneratorExit:  # the caller stopped reading: the zoom stops too
                    self._cancel_on(socket, request.request_id, CANCEL_GRACE)
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
        _trace("sent", header, frames[2:])
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
            _trace("received", header, frames[1:])
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


# DEEPDREAM_TRACE=1: every message this client sends and receives, on stderr, a line each (as the zguide's
# clients' verbose flag): the header, and the payload frames' sizes.
_TRACING = os.environ.get("DEEPDREAM_TRACE", "") not in ("", "0")


def _trace(what, header, payloads):
    if _TRACING:
        sizes = "".join(f" +{len(frame)} bytes" for frame in payloads)
        print(f"deepdream-client: {what} {shown(header, 400)}{sizes}", file=sys.stderr, flush=True)


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


class RawImage(NamedTuple):
    """Raw samples as the wire carries them: row-major, interleaved, little-endian (what GIMP's plug-in reads
    from a layer, without numpy)."""
    pixels: bytes
    width: int
    height: int
    channels: int
    dtype: str = "uint8"


def _guide_frame(guide):
    """(`guide` description, payload) of a guide given as a numpy array (raw), an image file's bytes (encoded)
    or a RawImage (any 5-tuple of its fields)."""
    if isinstance(guide, (bytes, bytearray, memoryview)):
        return {"format": ENCODED}, guide
    if isinstance(guide, tuple):
        guide = RawImage(*guide)
        return _raw_description(*guide), guide.pixels
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
