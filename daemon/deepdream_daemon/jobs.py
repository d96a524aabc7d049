"""A dream request between the I/O thread that received it and the worker
thread that runs it, and the bounded queue they share."""

import collections
import threading
import time
from dataclasses import dataclass, field


@dataclass(eq=False)
class Job:
    request_id: object
    envelope: list  # routing frames to answer on, as received
    description: dict  # the request's `image`
    payload: object  # the payload frame's buffer, undecoded
    params: dict
    wants_progress: bool
    size: str  # for log lines, e.g. "120x100 raw uint8x3"
    preview: dict = None  # {"interval": s, "max_side": px} when the client asked for previews (checked)
    zoom: dict = None  # a zoom's `zoom` map (checked, every key set); None for a dream
    guide: dict = None  # the request's `guide` (checked like `image`); None without one
    guide_payload: object = None  # the guide's frame buffer; the worker replaces it with the decoded array
    received: float = field(default_factory=time.monotonic)
    stop_reason: str = ""  # "", or the error code the dream ends with: CANCELLED / SHUTTING_DOWN
    last_progress: dict = None  # the newest progress event sent, repeated as a liveness probe
    last_sent: float = 0.0
    # A zoom's frames the worker posted that the I/O thread has not handed to ZeroMQ yet (its client's
    # queue there was full): the worker waits for them before it dreams another frame.
    _unsent_frames: int = 0
    _frames: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def stop(self, code):
        """Ask the dream to end at its next step (or tile) with error `code`.
        A plain attribute is enough: the worker only polls it, and the first reason wins.
        A zoom waiting for its client to take a frame stops waiting."""
        if not self.stop_reason:
            self.stop_reason = code
        with self._frames:
            self._frames.notify_all()

    def frame_posted(self):
        """The worker: a frame is on its way to the I/O thread."""
        with self._frames:
            self._unsent_frames += 1

    def frame_sent(self):
        """The I/O thread: a frame is in ZeroMQ's queue for the client (or the client is gone)."""
        with self._frames:
            self._unsent_frames -= 1
            self._frames.notify_all()

    def wait_for_frames(self, timeout):
        """The worker: wait until every frame posted is in ZeroMQ's queue, or the job is stopped;
        False when `timeout` seconds passed first (the client takes no frames)."""
        with self._frames:
            return self._frames.wait_for(lambda: self._unsent_frames <= 0 or self.stop_reason, timeout)

class QueueFull(Exception):
    pass


class JobQueue:
    """FIFO of waiting jobs with a hard bound; the I/O thread puts and removes,
    the worker takes."""

    def __init__(self, capacity):
        self.capacity = capacity
        self._jobs = collections.deque()
        self._ready = threading.Condition()
        self._closed = False

    def put(self, job):
        with self._ready:
            if len(self._jobs) >= self.capacity:
                raise QueueFull()
            self._jobs.append(job)
            self._ready.notify()

    def take(self):
        """The next job, waiting for one; None once the queue is closed."""
        with self._ready:
            while not self._jobs and not self._closed:
                self._ready.wait()
            return None if self._closed else self._jobs.popleft()

    def remove(self, job):
        """True if `job` was still waiting (and is now gone)."""
        with self._ready:
            try:
                self._jobs.remove(job)
                return True
            except ValueError:
                return False

    def close(self):
        """Wake the worker for good; returns the jobs that never ran."""
        with self._ready:
            self._closed = True
            left, self._jobs = list(self._jobs), collections.deque()
            self._ready.notify_all()
            return left

    def snapshot(self):
        with self._ready:
            return list(self._jobs)

    def __len__(self):
        return len(self._jobs)
