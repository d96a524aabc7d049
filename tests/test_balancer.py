"""A studio's daemons behind one address: three real daemons on loopback behind a real HAProxy in TCP mode, running
the repository's deploy/haproxy/deepdream.cfg (bench/haproxy_process.py points its addresses here).

Each dream is one connection, so HAProxy's leastconn spreads dreams and keeps each dream's messages on its daemon;
the replies name the daemon (`daemon`), which is how these tests see where each dream went. The daemons share one
CURVE key pair, as a studio's must: the clients' CURVE sessions run through HAProxy, end to end."""

import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bench.daemon_process import daemon_command, free_port, start_daemon
from deepdream_cli.keys import make_pair
from deepdream_client.client import DaemonError, DaemonUnavailable, DreamClient
from deepdream_daemon import agent
from bench.haproxy_process import haproxy_binary, start_haproxy
from images import photo
from raw_wire import wait_for

# The studio's tests are slow: three daemons loading TensorFlow side by side, about half a minute on 2 cores.

SMALL = {"octaves": 1, "steps": 2}
MEDIUM = {"octaves": 1, "steps": 60}  # seconds: still running when its daemon is killed, done soon after
LONG = {"octaves": 1, "steps": 1000}  # half a minute or more: only ever cancelled
SILENCE_S = 3.0  # the client's silence limit for a dream (its minimum)
HAPROXY_SEES_S = 20  # the checks run every 1-2 s and need 2 in a row


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    if haproxy_binary() is None:
        message = "haproxy is not installed (Debian and Ubuntu: apt-get install haproxy; install.sh --dev does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI installs it: its absence is a broken setup, never a reason to skip
        pytest.skip(message)
    studio = Studio(tmp_path_factory.mktemp("studio") / "keys")
    try:
        with ThreadPoolExecutor(3) as pool:  # the three load side by side
            for name, daemon in zip(("d1", "d2", "d3"), pool.map(studio.start, ("d1", "d2", "d3"))):
                studio.daemons[name] = daemon
        studio.balancer = start_haproxy([(name, daemon.endpoint, studio.agents[name])
                                         for name, daemon in studio.daemons.items()], free_port())
        studio.balancer.wait_for(lambda servers: all(row["status"] == "UP" for row in servers.values()),
                                 HAPROXY_SEES_S, "the three daemons up")
        yield studio
    finally:
        studio.stop()


class Studio:
    def __init__(self, keys):
        self.daemons = {}  # name -> DaemonProcess
        self.agents = {name: free_port() for name in ("d1", "d2", "d3")}
        self.balancer = None
        self.keys = keys
        self.server_key = make_pair(keys, "server")[0]  # `deepdream keys server`: the pair every daemon gets

    def start(self, name, wait=True, endpoint=None):
        return start_daemon("--agent-port", str(self.agents[name]), "--curve-keys", str(self.keys),
                            endpoint=endpoint, wait=wait)

    def client(self, endpoint=None, **options):
        """A DreamClient of the balancer's address (or `endpoint`), with the daemons' server key."""
        return DreamClient(endpoint or self.balancer.endpoint, curve_server_key=str(self.server_key), **options)

    def name_of(self, daemon_address):
        return next(name for name, daemon in self.daemons.items() if daemon.endpoint == daemon_address)

    def stop(self):
        if self.balancer is not None:
            self.balancer.stop()
        with ThreadPoolExecutor(3) as pool:  # each finishes its running step first: side by side
            list(pool.map(lambda daemon: daemon.stop(), self.daemons.values()))


def dream_on(client, image, params, record=None, **options):
    """(the dream's array, the daemon that dreamed it, as the result names it); `record` gets each event."""
    array, result = client.dream_array(image, params, return_result=True, progress=record, **options)
    return array, result.header["daemon"]


@pytest.mark.parametrize(("state", "stopping", "busy", "queued", "line"), [
    ("loading", False, False, 0, "down #loading the model\n"),  # a dream sent there would only wait
    ("error", False, False, 0, "down #cannot load its model (see its log)\n"),
    ("ready", True, True, 0, "down #shutting down\n"),
    ("ready", False, False, 0, "up ready 100%\n"),
    ("ready", False, True, 8, "up ready 47%\n"),  # 9 of 17 places taken: half the weight
    ("ready", False, True, 15, "up ready 6%\n"),
    ("ready", False, True, 16, "up drain #queue full (16 waiting)\n"),  # the next one would get QUEUE_FULL
])
def test_the_agent_tells_haproxy_whether_a_daemon_takes_new_dreams(state, stopping, busy, queued, line):
    assert agent.reply(state, stopping, busy, queued, capacity=16) == line


def test_an_agent_port_already_taken_stops_the_daemon_at_start_in_one_sentence():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(daemon_command() + ["--endpoint", f"tcp://127.0.0.1:{free_port()}", "--agent-port",
                                                  str(port)], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "XDG_CONFIG_HOME": "/nonexistent"})
    assert done.returncode == 1
    assert f"cannot answer HAProxy's agent check on port {port}: Address already in use; give --agent-port a free " \
           f"port (or 0 for no agent)" in done.stderr, done.stderr


@pytest.mark.slow
def test_each_daemon_answers_the_agent_check_and_haproxy_weighs_them_by_it(studio):
    for name, port in studio.agents.items():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as check:  # what HAProxy's agent-check reads
            assert check.makefile().read() == "up ready 100%\n"
    assert {row["weight"] for row in studio.balancer.servers().values()} == {"100"}


@pytest.mark.slow
def test_twelve_dreams_from_three_clients_spread_over_the_three_daemons_each_reply_to_its_own(studio):
    images = [photo(80 + 8 * index, 96, seed=index) for index in range(3)]  # an image and a size per client
    with studio.client(studio.daemons["d1"].endpoint) as direct:
        expected = [direct.dream_array(image, SMALL) for image in images]  # identical daemons: the same dream
    clients = [studio.client() for _ in images]
    try:
        with ThreadPoolExecutor(12) as pool:  # four dreams at once from each client: twelve connections
            done = list(pool.map(lambda n: (n % 3, *dream_on(clients[n % 3], images[n % 3], SMALL)), range(12)))
    finally:
        for client in clients:
            client.close()
    for owner, array, _ in done:
        np.testing.assert_array_equal(array, expected[owner])  # its own image's dream, nobody else's
    served = {studio.name_of(daemon) for _, _, daemon in done}
    assert served == {"d1", "d2", "d3"}, [daemon for _, _, daemon in done]


@pytest.mark.slow
def test_a_cancel_from_another_client_or_thread_stops_the_right_dream(studio):
    owner, other, canceller = (studio.client() for _ in range(3))
    started = {"mine": threading.Event(), "other": threading.Event()}
    daemons, outcomes = {}, {}

    def long_dream(key, client):
        def record(event):
            daemons[key] = event["daemon"]
            started[key].set()  # running, or queued: either way a cancel ends it
        try:
            client.dream_array(photo(96, 96), LONG, progress=record, request_id=f"long-{key}")
        except DaemonError as error:
            outcomes[key] = error.code

    threads = [threading.Thread(target=long_dream, args=(key, client)) for key, client in
               (("mine", owner), ("other", other))]
    try:
        for thread in threads:
            thread.start()
        assert all(event.wait(60) for event in started.values()), "the long dreams did not start"
        # Another client, on another connection: HAProxy may give it any daemon, so it names the dream's own.
        reply = canceller.cancel("long-mine", daemon=daemons["mine"])
        assert reply["found"] is True and reply["daemon"] == daemons["mine"]
        threads[0].join(30)
        assert outcomes == {"mine": "CANCELLED"}  # that dream ended; the other one dreams on
        # Another thread of the dream's own client: the cancel rides the dream's connection, daemon unnamed.
        reply = other.cancel("long-other")
        assert reply["found"] is True and reply["daemon"] == daemons["other"]
        threads[1].join(30)
        assert outcomes == {"mine": "CANCELLED", "other": "CANCELLED"}
    finally:
        for client in (owner, other, canceller):
            client.close()  # a dream still running is then cancelled by its client going away
        for thread in threads:
            thread.join(30)


def test_the_cli_names_the_daemon_behind_the_balancer_and_cancel_reaches_it_there(studio, tmp_path):
    """`deepdream dream --id` through the balancer says which daemon took the job; `deepdream cancel --daemon` with
    that address stops it, where a cancel sent to the balancer's address could reach another daemon."""
    from PIL import Image

    Image.fromarray(photo(96, 96)).save(tmp_path / "in.png")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DEEPDREAM_")},
           "XDG_CONFIG_HOME": str(tmp_path / "no-config")}
    connection = ["--endpoint", studio.balancer.endpoint, "--server-key", str(studio.server_key)]
    deepdream = [sys.executable, "-m", "deepdream_cli.cli"]
    dreaming = subprocess.Popen([*deepdream, "dream", str(tmp_path / "in.png"), str(tmp_path / "out.png"),
                                 *connection, "--octaves", "1", "--steps", "1000", "--id", "studio-job"],
                                stderr=subprocess.PIPE, text=True, env=env)
    try:
        named = dreaming.stderr.readline().strip()
        daemon = named.removeprefix("job studio-job runs on the daemon at ").removesuffix(
            f", behind {studio.balancer.endpoint}")
        assert daemon in {process.endpoint for process in studio.daemons.values()}, named
        done = subprocess.run([*deepdream, "cancel", "studio-job", *connection, "--daemon", daemon],
                              capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0 and done.stdout == f"cancelled job studio-job at {daemon}\n", done.stderr
        assert dreaming.wait(timeout=30) == 1
        assert dreaming.stderr.read().strip().endswith("the dream was cancelled, as asked (CANCELLED)")
    finally:
        dreaming.kill()


@pytest.mark.slow
def test_a_cancel_from_the_dreams_own_progress_callback_rides_its_connection(studio):
    replies = []

    def cancel_once_running(event):
        if event["octave"] >= 1 and not replies:
            replies.append(client.cancel("own-callback"))  # the waiting thread itself: sent once this returns
    with studio.client() as client, pytest.raises(DaemonError) as ended:
        client.dream_array(photo(96, 96), LONG, progress=cancel_once_running, request_id="own-callback")
    assert ended.value.code == "CANCELLED" and replies[0]["found"] is True


@pytest.mark.slow
def test_a_client_that_goes_away_mid_dream_frees_its_daemon(studio):
    """HAProxy closes its connection to the daemon when the client's closes: the daemon's heartbeat finds the client
    gone and stops the dream, as without a balancer (a relay, by contrast, keeps its connection)."""
    class Gone(Exception):
        pass

    seen = {}

    def leave(event):
        if event["octave"] >= 1:
            seen["daemon"] = event["daemon"]
            raise Gone  # the dream's socket closes, no cancel sent: as when GIMP ends a plug-in
    with studio.client() as client, pytest.raises(Gone):
        client.dream_array(photo(96, 96), LONG, progress=leave)
    with studio.client(seen["daemon"]) as direct:
        wait_for(lambda: not direct.ping()["busy"], 15, "the daemon free again")  # LONG would take a minute


@pytest.mark.slow
def test_a_killed_daemon_loses_only_its_dream_and_new_dreams_avoid_it_and_a_loading_one(studio):
    """Runs last: it kills a daemon and leaves it loading."""
    clients = [studio.client(timeout=SILENCE_S) for _ in range(3)]
    running = threading.Event()
    daemons, outcomes = {}, {}

    def medium_dream(index):
        def record(event):
            daemons[index] = event["daemon"]
            if index == 0 and event["octave"] >= 1:
                running.set()
        try:
            clients[index].dream_array(photo(96, 96, seed=index), MEDIUM, progress=record)
            outcomes[index] = "result"
        except DaemonUnavailable as error:
            outcomes[index] = str(error)

    threads = [threading.Thread(target=medium_dream, args=(index,)) for index in range(3)]
    try:
        for thread in threads:
            thread.start()
        assert running.wait(60), "the first dream did not start"
        victim = studio.name_of(daemons[0])
        studio.daemons[victim].process.kill()  # mid-dream, without a word
        # At once, before HAProxy's checks notice: a refused connection is tried again on another daemon.
        with studio.client() as newcomer:
            with ThreadPoolExecutor(4) as pool:
                after_kill = list(pool.map(lambda seed: dream_on(newcomer, photo(96, 96, seed=seed), SMALL)[1],
                                           range(4)))
        for thread in threads:
            thread.join(60)
        lost = {index for index, daemon in daemons.items() if studio.name_of(daemon) == victim}
        assert 0 in lost and len(lost) < 3, daemons  # leastconn gave the three dreams a daemon each
        for index in lost:  # the usual error, after the silence limit, naming the daemon the dream was on
            assert f"the daemon that took this dream, {daemons[index]}, has sent nothing about it for " \
                   f"{SILENCE_S:g} s" in outcomes[index]
            assert "now reaches another one" in outcomes[index] and "not resent" in outcomes[index]
        assert all(outcomes[index] == "result" for index in set(range(3)) - lost), outcomes
        assert victim not in {studio.name_of(daemon) for daemon in after_kill}

        studio.balancer.wait_for(lambda servers: servers[victim]["status"].startswith("DOWN"), HAPROXY_SEES_S,
                                 f"{victim} down")
        # Back at its address (a service manager restarting it), loading its model: its agent says so.
        endpoint = studio.daemons[victim].endpoint
        studio.daemons[victim] = studio.start(victim, wait=False, endpoint=endpoint)
        studio.balancer.wait_for(lambda servers: "loading" in servers[victim]["last_agt"], HAPROXY_SEES_S,
                                 f"{victim}'s agent say it is loading")
        with studio.client() as newcomer:
            with ThreadPoolExecutor(4) as pool:
                while_loading = list(pool.map(lambda seed: dream_on(newcomer, photo(96, 96, seed=seed), SMALL)[1],
                                              range(4)))
        with studio.client(endpoint) as direct:  # it was loading all along: the dreams above could have gone there
            assert direct.ping()["state"] == "loading"
        assert victim not in {studio.name_of(daemon) for daemon in while_loading}
    finally:
        for client in clients:
            client.close()
