"""The worker thread: the only thread that touches TensorFlow.

It imports and loads the engine (so the I/O thread answers pings meanwhile),
warms it with a tiny dream so the first real one does not pay for compiling,
then runs queued jobs one at a time. What it has to say (progress, results)
goes through an Outbox to the I/O thread, which owns the socket."""

import gc
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from functools import partial

import zmq

from . import payloads
from .notify import notify, status
from deepdream_client.previews import Previews
from deepdream_common.layer_spec import split_target
from deepdream_client.protocol import ProtocolError, error, shown, stopped
from deepdream_common.vocabulary import (BUILT_IN_MODELS, DEFAULT_MODEL, INTERNAL, INVALID_PARAMS, NOT_READY,
                                         OUT_OF_MEMORY, PARAMS, UNKNOWN_LAYER)

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
        self.engine = None  # the engine of the model used last (the default one until a request names another)
        self.engines = OrderedDict()  # model name -> DreamEngine, least recently used first (this thread only)
        self.loaded = ()  # the names in self.engines, for the I/O thread (a tuple: replaced, never changed)
        self.catalog = {}  # model name -> what info says of it once loaded (replaced whole, never changed)
        self._compile_mark = (None, 0.0)  # the job's engine and its compile_seconds before the job
        self.defaults = {}
        self._params_type = None

    # -- read by the I/O thread (plain attribute reads; safe under the GIL) --------------------------

    def describe(self, model=DEFAULT_MODEL):
        """What ping reports about the model (the default one; a result's stats name its own)."""
        engine = self.engine
        return {"model": model, "weights": engine.weights if engine else self.settings.weights,
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
        available = self.available_models()
        if checked.model not in available:
            raise ProtocolError(INVALID_PARAMS, f"bad params: model: unknown model {shown(checked.model)}; this "
                                                f"daemon has {', '.join(available)}")
        # A model not loaded yet has its layers checked by its engine, once loaded.
        layers = self.catalog.get(checked.model, {}).get("layers", {})
        unknown = [key for key in checked.layers or () if split_target(key)[0] not in layers]
        if layers and unknown:
            raise ProtocolError(UNKNOWN_LAYER, f"unknown layer {shown(unknown[0])}; {checked.model} has "
                                                 f"{', '.join(layers)}")
        return checked

    def available_models(self):
        """The models a request may name: the built-ins, then the model files in the models folder
        (a file named like a built-in is not one of them: the built-in wins)."""
        from dream_engine.model_files import find_model_files

        return list(BUILT_IN_MODELS) + sorted(set(find_model_files(self.settings.models_dir)) - set(BUILT_IN_MODELS))

    def models(self):
        """info's "models": each available model, whether it is loaded, and what is known of it
        (its layers, their channels and its memory once it has been loaded)."""
        from dream_engine.networks import BUILT_IN

        described = []
        for name in self.available_models():
            spec = BUILT_IN.get(name)
            unseen = {"memory_mib": None, "layers": {layer: None for layer in spec.layers} if spec else {},
                      "default_layers": dict(spec.default_layers) if spec else {},
                      "preprocess": spec.preprocess if spec else None}
            described.append({"name": name, "loaded": name in self.loaded, **self.catalog.get(name, unseen)})
        return described

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
        try:
            Path(self.settings.models_dir).mkdir(parents=True, exist_ok=True)
        except OSError as failure:
            log.warning("the models folder %s could not be created: %s", self.settings.models_dir, failure)
        self._engine_class = DreamEngine
        engine = self._engine_for(DEFAULT_MODEL)
        self._params_type = DreamParams
        self.defaults = DreamParams().to_dict()
        status("compiling the dream step")
        engine.warm_up()  # the default layers' step, compiled before the first client waits for it
        self.state = "ready"
        log.info("ready: %s weights, %s backend on %s at %s, in %.1f s", engine.weights, engine.backend,
                 engine.device, engine.precision, time.monotonic() - started)
        notify("READY=1", "STATUS=ready, idle")

    def _engine_for(self, model):
        """The engine that dreams with `model`, loaded on first use and kept warm with the
        settings' max_models most recently used ones (each holds its network and compiled steps)."""
        engine = self.engines.get(model)
        if engine is None:
            # Room first: the least recently used go before the new one loads, not after (peak memory).
            while self.engines and len(self.engines) >= self.settings.max_models:
                evicted, _ = self.engines.popitem(last=False)
                log.info("model %s unloaded (max_models is %d)", evicted, self.settings.max_models)
            self.loaded = tuple(self.engines)
            gc.collect()  # an evicted network's compiled steps sit in reference cycles
            status(f"loading the model {model}")
            started = time.monotonic()
            # A weights file is the default network's; the other built-ins take ImageNet's then.
            weights = self.settings.weights
            if model != DEFAULT_MODEL and weights not in ("imagenet", "random"):
                weights = "imagenet"
            engine = self._engine_class(
                model=model, weights=weights, precision=self.settings.precision, max_pixels=self.settings.max_pixels,
                memory_budget_mib=self.settings.memory_budget, compiled_layer_sets=self.settings.compiled_layer_sets,
                models_dir=self.settings.models_dir)
            self.engines[model] = engine
            self.catalog = {**self.catalog, model: {
                "memory_mib": round(engine.network.memory_mib, 1), "layers": dict(engine.layer_channels),
                "default_layers": dict(engine.default_layers), "preprocess": engine.network.preprocess}}
            log.info("model %s loaded in %.1f s (%.0f MiB of parameters)", model, time.monotonic() - started,
                     engine.network.memory_mib)
        self.engines.move_to_end(model)
        self.loaded = tuple(self.engines)
        self.engine = engine
        return engine

    def _job_engine(self, model):
        """_engine_for for a request: a model that cannot be loaded is the request's INVALID_PARAMS."""
        from dream_engine.errors import WeightsUnavailable

        try:
            engine = self._engine_for(model)
        except WeightsUnavailable as failure:
            raise ProtocolError(INVALID_PARAMS, f"bad params: model: {model} could not be loaded: {failure}") from None
        self._compile_mark = (engine, engine.compile_seconds)
        return engine

    def _run(self, job):
        self.current = job
        status(f"dreaming {job.size} ({len(self.jobs)} waiting)")
        started, self._compile_mark = time.monotonic(), (None, 0.0)
        header, payload = self._answer(job)
        seconds = time.monotonic() - started
        if header["type"] == "result":
            # The first dream with a layer set also pays for compiling it: said apart, as part of seconds.
            header["stats"]["seconds"] = round(seconds, 3)
            engine, compiled_before = self._compile_mark
            header["stats"]["compile_seconds"] = round(engine.compile_seconds - compiled_before, 3)
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
            params = self._job_engine(params.model).resolved(params)  # a network's own default layers
            image = payloads.decode(job.description, job.payload, self.settings.max_pixels)
            if job.guide is not None:
                job.guide_payload = payloads.decode(job.guide, job.guide_payload, self.settings.max_pixels, "guide")
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
        stats = {**params.to_dict(), **self.describe(params.model), **({} if job.zoom is None else {"zoom": job.zoom})}
        return {"type": "result", "id": job.request_id, **done, "stats": stats}, payload

    def _zoom(self, job, image, params):
        """Dream a zoom's frames, posting each as soon as it is done (a cancel keeps them
        with the client); (frames sent, the params used)."""
        from dream_engine import zoom

        sent, last = 0, job.zoom["first_index"] + job.zoom["frames"]
        for index, frame, params in zoom.frames(image, job.zoom, params, partial(self._dream, job)):
            description, payload = payloads.encode(frame, job.description)
            job.frame_posted()
            self.outbox.post(job, {"type": "frame", "id": job.request_id, "index": index, "frames": last,
                                   "image": description}, payload)
            sent += 1
            # The next frame is dreamed once this one is in ZeroMQ's queue for the client, so that a client
            # that reads nothing holds a few frames in the daemon, not the zoom's thousands. (The result
            # after the last frame waits in the server's backlog: it needs no wait here.)
            if index < last and not job.wait_for_frames(self.settings.frame_wait):
                log.info("job %s: its client took no frame for %d s; stopping the zoom", shown(job.request_id),
                         self.settings.frame_wait)
                job.stop("unread")
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
                                         should_stop=lambda: bool(job.stop_reason), guide=job.guide_payload), params
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
