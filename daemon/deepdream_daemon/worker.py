"""The worker thread: the only thread that touches TensorFlow.

It imports and loads the engine (so the I/O thread answers pings meanwhile),
warms it with a tiny dream so the first real one does not pay for compiling,
then runs queued jobs one at a time. What it has to say (progress, results)
goes through an Outbox to the I/O thread, which owns the socket."""

import logging
import queue
import threading
import time
from dataclasses import replace
from functools import partial

import zmq

from . import payloads
from .notify import notify, status
from deepdream_client.previews import Previews
from deepdream_client.protocol import ProtocolError, error, shown, stopped
from deepdream_client.vocabulary import INTERNAL, NOT_READY, OUT_OF_MEMORY, PARAMS, UNKNOWN_LAYER

log = logging.getLogger("deepdream.daemon")

MIN_TILE = PARAMS["tile_size"].low  # the smallest tile an out-of-memory retry may ask for
# The exception's own text may quote the client's data at any length: it goes to the log, not the wire.
_INTERNAL_MESSAGE = "the daemon failed on this request; its log has the details"


class Outbox:
    """Worker -> I/O thread messages: Python objects on a queue, plus a byte on
    an inproc socket to wake the I/O thread's poller."""

    def __init__(self, context, address):
        self._context = context
        self._address = address
        self._messages = queue.SimpleQueue()
        self._local = threading.local()  # a zmq socket belongs to the thread that made it

    def post(self, job, header, payload=None):
        self._messages.put((job, header, payload))
        bell = getattr(self._local, "bell", None)
        if bell is None:
            bell = self._local.bell = self._context.socket(zmq.PUSH)
            bell.setsockopt(zmq.LINGER, 0)
            bell.connect(self._address)
        try:
            bell.send(b"", zmq.NOBLOCK)
        except zmq.Again:
            pass  # the I/O thread has wake-ups pending already; it will drain this message too

    def close_thread_socket(self):
        """Close the calling thread's wake-up socket, so that the context can terminate."""
        bell = getattr(self._local, "bell", None)
        if bell is not None:
            bell.close()
            self._local.bell = None

    def drain(self):
        while True:
            try:
                yield self._messages.get_nowait()
            except queue.Empty:
                return


class Worker(threading.Thread):
    def __init__(self, settings, jobs, outbox):
        super().__init__(name="dream-worker", daemon=True)
        self.settings = settings
        self.jobs = jobs
        self.outbox = outbox
        self.state = "loading"  # -> "ready" or "error"; read by the I/O thread
        self.error = ""
        self.current = None  # the running Job
        self.engine = None
        self.defaults = {}
        self._params_type = None

    # -- read by the I/O thread (plain attribute reads; safe under the GIL) --------------------------

    def describe(self):
        """What ping reports about the model."""
        engine = self.engine
        return {"model": "inception_v3", "weights": engine.weights if engine else self.settings.weights,
                "backend": engine.backend if engine else self.settings.backend,
                "device": engine.device if engine else self.settings.device,
                "precision": engine.precision if engine else self.settings.precision}

    def validate(self, params):
        """Check a request's params against the loaded model; raises ProtocolError."""
        from dream_engine.errors import DreamError  # imported already: only called once ready

        try:
            checked = self._params_type.from_dict(params)
        except DreamError as failure:
            raise ProtocolError(failure.code, f"bad params: {failure}") from None
        unknown = [name for name in checked.layers if name not in self.engine.layers]
        if unknown:
            raise ProtocolError(UNKNOWN_LAYER, f"unknown layer {shown(unknown[0])}; this model has "
                                                 f"{', '.join(self.engine.layers)}")
        return checked

    # -- the thread ---------------------------------------------------------------------------------

    def run(self):
        try:
            self._load()
        except Exception as failure:  # noqa: BLE001  whatever it was, the daemon stays up to say so
            self.error = str(failure) or type(failure).__name__
            self.state = "error"
            log.error("the model could not be loaded: %s", self.error)
            status(f"error: {self.error.splitlines()[0]}")
        try:
            while (job := self.jobs.take()) is not None:
                if self.state == "error":
                    self.outbox.post(job, error(job.request_id, NOT_READY, self.not_ready_message()))
                    continue
                try:
                    self._run(job)
                except Exception:  # noqa: BLE001  _answer turns a dream's failures into replies; this is a bug
                    log.exception("job %s: the worker failed outside the dream", shown(job.request_id))
                    if self.current is job:  # not answered yet (_run clears it just before its reply)
                        self.current = None
                        self.outbox.post(job, error(job.request_id, INTERNAL, _INTERNAL_MESSAGE))
        finally:
            self.outbox.close_thread_socket()

    def not_ready_message(self):
        return f"the daemon could not load its model: {self.error}"

    def _load(self):
        status("loading the model")
        started = time.monotonic()
        from dream_engine import startup

        startup.use_backend(self.settings.backend)
        startup.load_quietly()  # the backend loads here, off the I/O thread; its C++ start-up lines stay out of the log
        from dream_engine import DreamEngine, DreamParams, backends

        if self.settings.device == "gpu" and not backends.current().gpu_name():
            raise RuntimeError(f"--device gpu was asked for, but {self.settings.backend} sees no GPU "
                               "(check the CUDA driver and that the backend's CUDA build is installed, "
                               "or use --device auto)")
        engine = DreamEngine(weights=self.settings.weights, precision=self.settings.precision,
                             max_pixels=self.settings.max_pixels, memory_budget_mib=self.settings.memory_budget,
                             compiled_layer_sets=self.settings.compiled_layer_sets)
        self._params_type = DreamParams
        self.defaults = DreamParams().to_dict()
        status("compiling the dream step")
        engine.warm_up()  # the default layers' step, compiled before the first client waits for it
        self.engine = engine
        self.state = "ready"
        log.info("ready: %s weights, %s backend on %s at %s, in %.1f s", engine.weights, engine.backend,
                 engine.device, engine.precision, time.monotonic() - started)
        notify("READY=1", "STATUS=ready, idle")

    def _run(self, job):
        self.current = job
        status(f"dreaming {job.size} ({len(self.jobs)} waiting)")
        started, compiled_before = time.monotonic(), self.engine.compile_seconds
        header, payload = self._answer(job)
        seconds = time.monotonic() - started
        if header["type"] == "result":
            # The first dream with a layer set also pays for compiling it: said apart, as part of seconds.
            header["stats"]["seconds"] = round(seconds, 3)
            header["stats"]["compile_seconds"] = round(self.engine.compile_seconds - compiled_before, 3)
            outcome = "done"
        else:
            outcome = f"{header['code']} ({job.stop_reason})" if job.stop_reason else header["code"]
        log.info("job %s %s: %s in %.2f s (waited %.2f s)", shown(job.request_id), job.size, outcome, seconds,
                 started - job.received)
        self.current = None  # before the reply: a client that pings right after its result sees busy=false
        self.outbox.post(job, header, payload)
        status(f"ready, {'idle' if not len(self.jobs) else f'{len(self.jobs)} waiting'}")

    def _answer(self, job):
        """The final (header, payload) for a job; every failure becomes a coded error."""
        from dream_engine.errors import DreamCancelled, DreamError

        try:
            if job.stop_reason:
                raise DreamCancelled("stopped before it started")
            params = self.validate(job.params)
            image = payloads.decode(job.description, job.payload, self.settings.max_pixels)
            job.size = f"{image.shape[1]}x{image.shape[0]}x{image.shape[2]} {image.dtype}"
            if job.zoom is None:
                dreamed, params = self._dream(job, image, params)
                description, payload = payloads.encode(dreamed, job.description)
                done = {"image": description}
            else:
                sent, params = self._zoom(job, image, params)
                payload, done = None, {"frames_sent": sent}  # the frames went out as they were done
        except ProtocolError as failure:
            return error(job.request_id, failure.code, failure.message), None
        except DreamCancelled:
            return stopped(job.request_id, job.stop_reason or "cancel"), None
        except DreamError as failure:
            return error(job.request_id, failure.code, str(failure)), None
        except MemoryError:
            return error(job.request_id, OUT_OF_MEMORY, "the machine ran out of memory for this image; "
                                                          "try a smaller image"), None
        except Exception:  # noqa: BLE001  a bug must cost one request, not the daemon
            log.exception("job %s failed", shown(job.request_id))
            return error(job.request_id, INTERNAL, _INTERNAL_MESSAGE), None
        stats = {**params.to_dict(), **self.describe(), **({} if job.zoom is None else {"zoom": job.zoom})}
        return {"type": "result", "id": job.request_id, **done, "stats": stats}, payload

    def _zoom(self, job, image, params):
        """Dream a zoom's frames, posting each as soon as it is done (a cancel keeps them
        with the client); (frames sent, the params used)."""
        from dream_engine import zoom

        sent, last = 0, job.zoom["first_index"] + job.zoom["frames"]
        for index, frame, params in zoom.frames(image, job.zoom, params, partial(self._dream, job)):
            description, payload = payloads.encode(frame, job.description)
            self.outbox.post(job, {"type": "frame", "id": job.request_id, "index": index, "frames": last,
                                   "image": description}, payload)
            sent += 1
        return sent, params

    def _dream(self, job, image, params, as_part=None):
        """Dream, retrying with smaller tiles when the device runs out of memory.
        `as_part(event)`: a zoom frame's progress event as one of the whole zoom."""
        from dream_engine.errors import OutOfMemory

        previews = Previews(job.preview) if job.preview else None

        def progress(event):
            if as_part is not None:
                event = as_part(event)
            fraction = max(event["fraction"], (job.last_progress or {}).get("fraction", 0.0))
            wire = {key: value for key, value in event.items() if key != "snapshot"}  # a callable: not for the wire
            header = {"type": "progress", "id": job.request_id, **wire, "fraction": fraction}
            frame = None
            if previews is not None and previews.due(event):
                header["preview"], frame = previews.take(event["snapshot"])
            self.outbox.post(job, header, frame)

        while True:
            try:
                return self.engine.dream(image, params, progress=progress if job.wants_progress else None,
                                         should_stop=lambda: bool(job.stop_reason)), params
            except OutOfMemory as failure:
                # Automatic tiles (tile_size 0) report the side they ran out at; half of it is then asked for.
                tried = failure.tile_size or params.tile_size or max(image.shape[:2])
                smaller = min(tried, max(image.shape[:2])) // 2
                if smaller < MIN_TILE:
                    raise OutOfMemory("out of memory even with the smallest tiles; try a smaller image, "
                                      "or stop other programs that use the GPU") from None
                log.warning("job %s: out of memory with %d px tiles, retrying with %d px", shown(job.request_id),
                            tried, smaller)
                params = replace(params, tile_size=smaller)
