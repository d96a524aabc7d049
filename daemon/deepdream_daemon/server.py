"""The I/O thread: one ROUTER socket, never blocked by TensorFlow.

It parses and answers requests, queues dreams for the worker, forwards what
the worker posts (progress, results) to the right client, and notices clients
that went away: with ROUTER_MANDATORY a send to a peer whose connection closed
fails with EHOSTUNREACH, so every progress event is also a liveness probe.
Dreams that asked for progress get one at least every HEARTBEAT_S, even while
queued or inside a long step, so a vanished DEALER client (GIMP kills a plug-in
whose progress bar is cancelled) is noticed within about a second. A REQ client
cannot receive anything but its one reply, so it cannot be probed: its dream
runs to the end even if it went away.

A client's messages wait in ZeroMQ's queue for it up to SEND_HWM; beyond it,
a message that must arrive (a final reply, a zoom's frame) waits in the
client's backlog here, in order, and one that need not (a progress event,
stale by the time the client reads) is dropped. A zoom's worker waits while
its frame is in the backlog (Job.wait_for_frames), so a client that stays
connected but reads nothing holds a few frames, not a zoom's thousands."""

import collections
import errno
import logging
import socket
import time

import zmq

from . import payloads
from .jobs import Job, QueueFull
from deepdream_client import previews
from deepdream_client.protocol import (MAX_HEADER_BYTES, VERSION, ProtocolError, checked_options, error, field, pack,
                                       shown, stopped, unpack)
from deepdream_common.vocabulary import (BAD_REQUEST, CANCEL, CHANNELS, DEFAULT_MODEL, DREAM, DTYPE_SIZES, INFO,
                                         INTERNAL, INVALID_PARAMS, MIN_SIDE, NOT_READY, PING, QUEUE_FULL, SHUTTING_DOWN,
                                         UNKNOWN_OP, UNSUPPORTED_VERSION, ZOOM, ZOOM_OPTIONS)

log = logging.getLogger("deepdream.daemon")

HEARTBEAT_S = 1.0
HOST = socket.gethostname()  # ping and info say which machine answered: one of several behind a load balancer
POLL_MS = 250  # also how soon a SIGTERM is noticed
BACKLOG_POLL_MS = 20  # how often a client's backlog is offered to ZeroMQ again (a ROUTER cannot poll one peer)
# Messages ZeroMQ queues for one client (the router's SNDHWM; a relay's clients share theirs): what a
# client that reads nothing costs, with the system's socket buffers, besides its backlog (a frame or a result).
SEND_HWM = 8
MAX_HOPS = 2  # relays (ROUTER-DEALER proxies, as `deepdream relay`) a request may have come through
# identity, relays' identities, delimiter, header, payload, guide, and one more to know there were too many
KEPT_FRAMES = 6 + MAX_HOPS
_MAP_STARTS = {*range(0x80, 0x90), 0xDE, 0xDF}  # the first byte of a msgpack map: a header, never a relay's hop
SHUTDOWN_GRACE_S = 30.0  # how long a running dream gets to reach its next step after SIGTERM


class Server:
    def __init__(self, settings, router, bell, jobs, worker, outbox, version):
        self.settings = settings
        self.router = router
        self.bell = bell  # PULL end of the outbox's wake-up socket
        self.jobs = jobs
        self.worker = worker
        self.outbox = outbox
        self.version = version
        self.active = {}  # (peer, request id) -> Job, queued or running
        # route -> deque of ((frames, copy), the Job of a zoom frame or None): must-arrive messages ZeroMQ had
        # no room for, oldest first
        self.backlogs = {}
        self.stop_requested = False  # set by the SIGTERM handler
        self._shutdown_deadline = None
        self._ops = {PING: self._ping, INFO: self._info, DREAM: self._dream, CANCEL: self._cancel, ZOOM: self._zoom}

    # -- the loop -------------------------------------------------------------------------------

    def serve(self):
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.bell, zmq.POLLIN)
        while True:
            ready = dict(poller.poll(BACKLOG_POLL_MS if self.backlogs else POLL_MS))
            _guarded(self._send_backlogs)  # first: what waits there was due before anything posted since
            if self.bell in ready:
                _guarded(self._deliver_posts)
            if self.router in ready:
                self._receive_all()
            _guarded(self._probe_waiting_clients)
            if self.stop_requested and self._shutdown_deadline is None:
                self._begin_shutdown()
            if self._shutdown_deadline is not None and self._finished_shutting_down():
                return

    def _receive_all(self):
        while True:
            try:
                frames, count = self._receive()
            except zmq.Again:
                return
            _guarded(self._handle, frames, count)

    def _receive(self):
        """The next message's first KEPT_FRAMES frames, and how many it had in all. The rest
        are read and dropped one by one: a message of a million one-byte frames would
        otherwise be a million Python objects (recv_multipart keeps them all)."""
        frames, count = [self.router.recv(zmq.NOBLOCK, copy=False)], 1
        while self.router.get(zmq.RCVMORE):  # a message arrives whole: its other frames are here
            frame = self.router.recv(copy=False)
            count += 1
            if len(frames) < KEPT_FRAMES:
                frames.append(frame)
        return frames, count

    # -- requests -------------------------------------------------------------------------------

    def _handle(self, frames, count):
        # A REQ client's envelope ends with an empty delimiter frame, a DEALER's may not; a relay puts
        # its client's identity after its own (the zguide's extended request-reply): replies go back
        # in the same shape.
        envelope = [frame.bytes for frame in frames[:_delimiter(frames) + 1]]
        body = frames[len(envelope):]
        request_id = None
        try:
            if not body:
                raise ProtocolError(BAD_REQUEST, "the message has no header frame")
            header = unpack(body[0].bytes)
            request_id = field(header, "id", str, default=None)  # first: every later error can name it
            if len(body) > 3 or (len(body) == 3 and header.get("guide") is None):  # `guide: null` describes none
                parts = count - len(envelope)
                raise ProtocolError(BAD_REQUEST, f"the message has {parts} frames after the envelope; a request is "
                                                   f"a header frame and at most one payload frame (two with `guide`)")
            version = header.get("v")
            if type(version) is not int or version != VERSION:  # exact: true and 1.0 are not version 1
                said = shown(version) if "v" in header else "missing"
                raise ProtocolError(UNSUPPORTED_VERSION, f"this daemon speaks protocol version {VERSION}; the "
                                                           f"request's `v` is {said}")
            name = field(header, "op", str)
            op = self._ops.get(name)
            if op is None:
                raise ProtocolError(UNKNOWN_OP, f"unknown op {shown(name)}; the ops are {', '.join(self._ops)}")
            payload = body[1] if len(body) >= 2 else None
            if payload is not None and name not in (DREAM, ZOOM):
                raise ProtocolError(BAD_REQUEST, f"`{name}` takes no payload frame")
            if name == DREAM and header.get("progress") is True and _socket_type(frames[0]) == "REQ":
                # A REQ socket takes one reply per request: a progress event would take the
                # result's place and the result would be lost. The envelope cannot tell (our own
                # DEALER client sends the delimiter too); the peer's handshake can.
                raise ProtocolError(BAD_REQUEST, "a REQ socket takes exactly one reply, so it cannot receive "
                                                 "progress events; send `progress` false, or use a DEALER socket")
            if name == ZOOM and _socket_type(frames[0]) == "REQ":
                raise ProtocolError(BAD_REQUEST, "a zoom answers with a message per frame and a REQ socket takes "
                                                 "exactly one reply; use a DEALER socket")
            reply = op(envelope, request_id, header, payload, *body[2:])  # a guide's frame: dream and zoom only
        except ProtocolError as failure:
            log.info("request %s from %s refused: %s %s", shown(request_id), _peer(envelope), failure.code,
                     failure.message)
            reply = error(request_id, failure.code, failure.message)
        except Exception:  # noqa: BLE001  a bug must cost one request, not the daemon and every dream in it
            log.exception("request %s from %s failed", shown(request_id), _peer(envelope))
            reply = error(request_id, INTERNAL, "the daemon failed on this request; its log has the details")
        if reply is not None:
            self._send(envelope, reply, must_arrive=True)

    def _ping(self, envelope, request_id, header, payload):
        pong = {"type": "pong", "id": request_id, "state": self.worker.state,
                "busy": self.worker.current is not None, "queued": len(self.jobs),
                **self.worker.describe(), "host": HOST, "version": self.version, "protocol": VERSION}
        if self.worker.error:
            pong["error"] = self.worker.error
        return pong

    def _info(self, envelope, request_id, header, payload):
        self._require_ready()
        from dream_engine.params import MAX_TARGET_CHARS, MAX_TARGETS  # imported already: the worker is ready

        limits = {"max_pixels": self.settings.max_pixels, "max_message_bytes": self.settings.max_message_bytes,
                  "max_header_bytes": MAX_HEADER_BYTES, "queue_length": self.settings.queue_length,
                  "min_side": MIN_SIDE, "dtypes": list(DTYPE_SIZES), "channels": list(CHANNELS),
                  "max_targets": MAX_TARGETS, "max_target_chars": MAX_TARGET_CHARS}
        default_model = self.worker.catalog[DEFAULT_MODEL]  # described when it was loaded, before "ready"
        return {"type": "info", "id": request_id, "layers": list(default_model["layers"]),
                "layer_channels": dict(default_model["layers"]),
                "models": self.worker.models(), "max_models": self.settings.max_models,
                "defaults": self.worker.defaults, "limits": limits, "memory": self.worker.engine.status(),
                **self.worker.describe(), "host": HOST,
                "version": self.version, "protocol": VERSION}

    def _require_ready(self):
        if self.worker.state == "error":
            raise ProtocolError(NOT_READY, self.worker.not_ready_message())
        if self.worker.state != "ready":
            raise ProtocolError(NOT_READY, "the model is still loading; try again in a few seconds "
                                             "(ping says state=ready when it is done)")

    def _zoom(self, envelope, request_id, header, payload, guide_payload=None):
        """A dream of many frames (docs/protocol.md, "zoom"): its `zoom` map checked, then queued as a dream."""
        zoom = checked_options(header.get("zoom", {}), "zoom", ZOOM_OPTIONS)
        return self._dream(envelope, request_id, header, payload, guide_payload, zoom=zoom)

    def _dream(self, envelope, request_id, header, payload, guide_payload=None, zoom=None):
        if self._shutdown_deadline is not None:
            raise ProtocolError(SHUTTING_DOWN, "the daemon is shutting down; send the dream again once it is back")
        if self.worker.state == "error":
            self._require_ready()
        if request_id is None or request_id == "":
            raise ProtocolError(BAD_REQUEST, "a dream needs an `id`, so that its replies and a cancel can name it")
        wants_progress = field(header, "progress", bool, default=False)
        preview = previews.checked(header["preview"]) if "preview" in header else None
        if preview is not None and not wants_progress:
            raise ProtocolError(BAD_REQUEST, "previews travel in progress events: `preview` needs `progress` true")
        params = field(header, "params", dict, default={}, code=INVALID_PARAMS)
        if self.worker.state == "ready":
            self.worker.validate(params)  # early answer; while loading the worker checks them when the job starts
        description = header.get("image")
        size = payloads.inspect(description, len(payload) if payload is not None else 0, self.settings.max_pixels)
        guide = header.get("guide")
        if "guide" in header:  # a second image, described like `image` (null is no map), its bytes in a third frame
            if guide_payload is None and isinstance(guide, dict):
                raise ProtocolError(BAD_REQUEST, "`guide` describes a second image: its bytes go in a third frame, "
                                                 "after the image's")
            payloads.inspect(guide, len(guide_payload) if guide_payload is not None else 0, self.settings.max_pixels,
                             name="guide")
        key = (_route(envelope), request_id)
        if key in self.active:
            # Answered under the same id as the dream that goes on: `duplicate_id` tells a
            # client matching replies by id that this refusal is not that dream's end.
            message = (f"a dream with id {shown(request_id)} from this client is already queued or running; "
                       f"use a new id for each dream")
            log.info("request %s from %s refused: %s %s", shown(request_id), _peer(envelope), BAD_REQUEST, message)
            return {**error(request_id, BAD_REQUEST, message), "duplicate_id": True}
        label = f"{size[0]}x{size[1]}" if size else f"{len(payload)}-byte file"
        job = Job(request_id, envelope, description, payload.buffer, params, wants_progress, label, preview=preview,
                  zoom=zoom, guide=guide, guide_payload=guide_payload.buffer if guide is not None else None)
        try:
            self.jobs.put(job)
        except QueueFull:
            raise ProtocolError(QUEUE_FULL, f"{self.settings.queue_length} dreams are already waiting; "
                                              f"try again when one has finished") from None
        self.active[key] = job
        return None  # the worker answers

    def _cancel(self, envelope, request_id, header, payload):
        target = field(header, "target", str)  # the id of the dream to stop
        # The canceller's own dream if it has one by that id; else any client's (a REQ
        # client, blocked on its dream, can only be cancelled from another socket).
        own = self.active.get((_route(envelope), target))
        targets = [own] if own else [job for job in self.active.values() if job.request_id == target]
        for job in targets:
            self._stop(job, "cancel")
        return {"type": "cancelled", "id": request_id, "target": target, "found": bool(targets)}

    # -- jobs ending ----------------------------------------------------------------------------

    def _stop(self, job, reason):
        """End a dream: a waiting one at once, a running one at its next step."""
        job.stop(reason)
        if self.jobs.remove(job):
            self._finish(job, None if reason == "vanished" else stopped(job.request_id, reason))
            log.info("job %s %s: stopped while waiting (%s)", shown(job.request_id), job.size, reason)

    def _finish(self, job, reply, payload=None):
        self.active.pop((_route(job.envelope), job.request_id), None)
        if reply is not None and not self._send(job.envelope, reply, payload, must_arrive=True) \
                and reply["type"] == "result":
            log.info("job %s: its client went away before the result could be sent", shown(job.request_id))

    def _deliver_posts(self):
        while True:
            try:
                self.bell.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        for job, header, payload in self.outbox.drain():
            if header["type"] == "progress":
                _guarded(self._send_progress, job, header, payload)
            elif header["type"] == "frame":
                _guarded(self._send_frame, job, header, payload)
            else:
                _guarded(self._finish, job, header, payload)

    def _send_progress(self, job, event, preview=None):
        """Send a progress event, with its preview frame when it has one."""
        if job.stop_reason:
            return
        # A heartbeat repeats the event without its preview: the frame is not kept.
        job.last_progress = {key: value for key, value in event.items() if key != "preview"}
        job.last_sent = time.monotonic()
        if not self._send(job.envelope, event, preview):
            log.info("job %s: its client went away; stopping the dream", shown(job.request_id))
            self._stop(job, "vanished")

    def _send_frame(self, job, header, frame):
        """Send a finished zoom frame, even to a zoom being cancelled: it is the client's now."""
        job.last_sent = time.monotonic()
        if not self._send(job.envelope, header, frame, must_arrive=True, frame_of=job):
            job.frame_sent()  # never will be: the worker must not wait for it
            log.info("job %s: its client went away; stopping the zoom", shown(job.request_id))
            self._stop(job, "vanished")

    def _probe_waiting_clients(self):
        """Repeat the last progress event (or a 'waiting' one) to every dream that asked
        for progress and has heard nothing for HEARTBEAT_S: a liveness probe."""
        now = time.monotonic()
        waiting = {id(job): place for place, job in enumerate(self.jobs.snapshot(), 1)}
        for job in list(self.active.values()):
            if job.wants_progress and now - job.last_sent >= HEARTBEAT_S:
                event = job.last_progress or {"type": "progress", "id": job.request_id, "octave": 0, "octaves": 0,
                                              "step": 0, "steps": 0, "fraction": 0.0}
                self._send_progress(job, {**event, "queued": waiting.get(id(job), 0)})

    def _send(self, envelope, header, payload=None, must_arrive=False, frame_of=None):
        """Send without ever blocking; False when the peer is gone. While ZeroMQ holds SEND_HWM messages for
        the client, one that `must_arrive` joins the client's backlog (`frame_of`: the zoom whose frame it is,
        told once it is sent) and any other is dropped; nothing overtakes the backlog."""
        header = {**header, "daemon": self.settings.advertise}  # which daemon, seen through a load balancer
        message = ([*envelope, pack(header)] + ([payload] if payload is not None else []), payload is None)
        route = _route(envelope)
        backlog = self.backlogs.get(route)
        if backlog is None:
            try:
                if self._offer(message):
                    if frame_of is not None:
                        frame_of.frame_sent()
                    return True
            except _Gone:
                return False
        if must_arrive:
            if backlog is None:
                log.info("%s reads none of its messages: they wait in the daemon", _peer(envelope))
                backlog = self.backlogs[route] = collections.deque()
            backlog.append((message, frame_of))
        return True  # alive, just slow

    def _offer(self, message):
        """Hand a message, (frames, copy), to ZeroMQ: False when the client's queue there is full, _Gone
        when the client is. A payload is sent from its own buffer, not copied."""
        frames, copy = message
        try:
            self.router.send_multipart(frames, zmq.NOBLOCK, copy=copy)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as failure:
            if failure.errno == errno.EHOSTUNREACH:
                raise _Gone() from None
            raise

    def _send_backlogs(self):
        """Offer each backlog's messages to ZeroMQ again, in order, as far as there is room."""
        for route, backlog in list(self.backlogs.items()):
            try:
                while backlog and self._offer(backlog[0][0]):
                    _, frame_of = backlog.popleft()
                    if frame_of is not None:
                        frame_of.frame_sent()
            except _Gone:
                log.info("%s went away with %d messages unread", _peer(route), len(backlog))
                for _, frame_of in backlog:
                    if frame_of is not None:
                        frame_of.frame_sent()
                backlog.clear()
                for job in [job for job in self.active.values() if _route(job.envelope) == route]:
                    self._stop(job, "vanished")
            if not backlog:
                del self.backlogs[route]

    # -- shutting down --------------------------------------------------------------------------

    def _begin_shutdown(self):
        from .notify import notify

        log.info("stopping: no new dreams; the running one ends at its next step")
        notify("STOPPING=1", "STATUS=stopping")
        self._shutdown_deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for job in self.jobs.close():
            self._finish(job, stopped(job.request_id, "shutdown"))
        for job in list(self.active.values()):
            job.stop("shutdown")

    def _finished_shutting_down(self):
        if self.worker.state == "loading":
            return True  # TensorFlow cannot be interrupted mid-import; nothing is running
        if self.worker.is_alive() and time.monotonic() < self._shutdown_deadline:
            return False
        self._deliver_posts()
        for job in list(self.active.values()):  # a step that outlived the grace period
            self._finish(job, stopped(job.request_id, "shutdown"))
        self._send_backlogs()  # what a slow reader's queue in ZeroMQ has room for now; the rest is lost
        return True


class _Gone(Exception):
    """The client's connection is closed (ROUTER_MANDATORY: EHOSTUNREACH)."""



def _delimiter(frames):
    """Where the envelope ends: the index of the empty delimiter after the peer's identity and any relays'
    (each up to 255 bytes, and not a header), or 0 (the identity alone: a DEALER that sends no delimiter)."""
    for index, frame in enumerate(frames[1:2 + MAX_HOPS], start=1):
        if len(frame) == 0:
            return index
        if len(frame) > 255 or frame.bytes[0] in _MAP_STARTS:
            return 0
    return 0


def _route(envelope):
    """Who sent it: the peer and, behind a relay, the relay's client (the delimiter left out)."""
    return tuple(hop for hop in envelope if hop)


def _peer(envelope):
    return "/".join(hop.hex()[:10] for hop in envelope if hop)


def _socket_type(identity_frame):
    """The socket type the peer declared in its ZeroMQ handshake ("REQ", "DEALER", ...);
    "" where there is none to read (inproc, or an old ZMTP 2 peer)."""
    try:
        return identity_frame.get("Socket-Type")
    except zmq.ZMQError:
        return ""


def _guarded(step, *args):
    """Run one step of the loop (a request, a delivery, the probes); a failure is
    logged with its traceback and the loop goes on: no message stops the daemon."""
    try:
        step(*args)
    except Exception:  # noqa: BLE001
        log.exception("the I/O loop caught a failure in %s; serving on", step.__name__)
