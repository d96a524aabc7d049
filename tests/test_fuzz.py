"""Property-based fuzzing of one real deepdream-daemon: whatever arrives (wrong
types, deep nesting, huge and unicode strings, odd frame counts, REQ or DEALER),
every message gets its coded reply, the daemon stays up, and it still dreams.

The generators live in bench/fuzz.py, which runs them for longer
(`python -m bench.fuzz --minutes 10`). Here they run a fixed, derandomized set
of examples (about 35 s on a 2-core Xeon): CI sees the same messages
every run, and a failure prints the message that caused it."""

import numpy as np
import pytest
from hypothesis import given

from bench.fuzz import exchange, fuzz_settings, messages, verdict
from images import photo
from raw_wire import call, dream_request, ping, result_array

pytestmark = pytest.mark.slow

EXAMPLES = 2500


def test_every_message_gets_a_coded_reply_and_the_daemon_survives(daemon):
    @fuzz_settings(EXAMPLES, derandomize=True)
    @given(messages())
    def answered(message):
        reply, frames = exchange(daemon.endpoint, message)
        assert verdict(message, reply, frames) is None, (verdict(message, reply, frames), reply)
        assert daemon.process.poll() is None, f"the daemon exited:\n{daemon.log_text()[-3000:]}"

    answered()
    assert ping(daemon.endpoint)["state"] == "ready"
    image = photo(100, 120)
    reply, payload = call(daemon.endpoint, *dream_request(image))
    assert reply["type"] == "result", reply
    assert result_array(reply, payload).shape == image.shape
    assert not np.array_equal(result_array(reply, payload), image)
    assert "Traceback" not in daemon.log_text(), "a failure inside the daemon (see its log)"
