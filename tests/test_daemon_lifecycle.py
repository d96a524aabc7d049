"""deepdream-daemon as a process: start-up, limits, refusals, CURVE, SIGTERM."""

import os
import socket
import stat
import subprocess
import time

import numpy as np
import pytest
import zmq

from bench.daemon_process import apply_client_curve, daemon_command, free_port, start_daemon
from images import photo
from raw_wire import LONG, call, connect, dream_request, final, ping, receive, request, result_array, send, wait_for

PROMPTLY_S = 15


def run_daemon(*args, timeout=60):
    """Run deepdream-daemon to its exit (for refusals, which happen before the model loads)."""
    return subprocess.run(daemon_command() + list(args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "XDG_CONFIG_HOME": "/nonexistent"})


def test_ping_answers_while_the_model_loads_and_sigterm_then_exits_cleanly(tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with open(tmp_path / "log", "wb") as log:
        process = subprocess.Popen(daemon_command() + ["--weights", "random", "--endpoint", endpoint],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        pong = ping(endpoint, timeout=20)  # TensorFlow takes seconds to import; the socket does not wait
        assert pong["state"] == "loading", pong
        assert call(endpoint, request("info"))[0]["code"] == "NOT_READY"
    finally:
        process.terminate()
        assert process.wait(30) == 0


@pytest.mark.slow  # two fresh interpreters loading TensorFlow, then JAX
def test_print_device_says_what_the_daemon_would_dream_with():
    """install.sh's last line: asked of the installed stack, with no model loaded and no socket bound."""
    done = run_daemon("--print-device", "--precision", "float32")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "backend tensorflow, device CPU, precision float32\n"
    done = run_daemon("--print-device", "--backend", "jax")
    assert done.returncode == 0, done.stderr
    assert done.stdout in ("backend jax, device CPU, precision bfloat16 (auto)\n",  # AMX or AVX512_BF16
                           "backend jax, device CPU, precision float32 (auto)\n")


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A daemon with a one-place queue, a 200 kB message limit and an ipc endpoint too."""
    folder = tmp_path_factory.mktemp("ipc")
    folder.chmod(0o700)
    ipc = f"ipc://{folder}/daemon.sock"
    with start_daemon("--queue-length", "1", "--max-message-bytes", "200000", "--endpoint", ipc) as daemon:
        daemon.ipc = ipc
        yield daemon


def test_ipc_endpoint_serves_too(limited):
    assert ping(limited.ipc)["state"] == "ready"
    reply, data = call(limited.ipc, *dream_request(photo(100, 120)))
    assert reply["type"] == "result" and result_array(reply, data).shape == (100, 120, 3)


def test_queue_full_beyond_the_queue_length(limited):
    runner, waiter, third = connect(limited.endpoint), connect(limited.endpoint), connect(limited.endpoint)
    running, payload = dream_request(photo(100, 120), LONG, progress=True)
    send(runner, running, payload)
    assert receive(runner)[0]["type"] == "progress"
    send(waiter, *dream_request(photo(100, 120)))
    wait_for(lambda: ping(limited.endpoint)["queued"] == 1, PROMPTLY_S, "one dream waits")
    send(third, *dream_request(photo(100, 120)))
    assert receive(third)[0]["code"] == "QUEUE_FULL"
    send(runner, request("cancel", target=running["id"]))
    assert final(waiter)[0]["type"] == "result"
    for sock in (runner, waiter, third):
        sock.close()


def test_a_message_over_the_size_limit_is_dropped_and_the_daemon_keeps_serving(limited):
    sock = connect(limited.endpoint)
    send(sock, *dream_request(np.zeros((300, 300, 3), np.uint8)))  # 270 kB > 200 kB
    assert not sock.poll(1000), "ZeroMQ drops it unread; there is nothing to answer"
    sock.close()
    assert ping(limited.endpoint)["state"] == "ready"


def test_a_second_daemon_on_the_same_endpoint_fails_clearly(limited):
    for endpoint in (limited.endpoint, limited.ipc):
        result = run_daemon("--weights", "random", "--endpoint", endpoint)
        assert result.returncode != 0
        assert f"{endpoint} is already in use" in result.stderr
    assert ping(limited.ipc)["state"] == "ready", "the first daemon keeps its socket"


def test_a_non_loopback_bind_without_keys_is_refused():
    result = run_daemon("--endpoint", f"tcp://0.0.0.0:{free_port()}")
    assert result.returncode != 0
    assert "without encryption" in result.stderr and "--curve-keys" in result.stderr


def test_an_ipc_socket_in_a_folder_others_can_open_is_refused(tmp_path):
    tmp_path.chmod(0o755)
    result = run_daemon("--endpoint", f"ipc://{tmp_path}/daemon.sock")
    assert result.returncode != 0 and "open to other users" in result.stderr


def test_bad_settings_are_reported_without_a_traceback():
    result = run_daemon("--precision", "float8")
    assert result.returncode == 2 and "--precision must be one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_ipc_socket_in_tmp_gets_advice_that_works():
    result = run_daemon("--endpoint", f"ipc:///tmp/deepdream-{free_port()}.sock")
    assert result.returncode != 0 and "open to other users" in result.stderr
    assert "chmod" not in result.stderr, "closing /tmp would break every other program"
    assert "use a folder of your own, such as ipc://$XDG_RUNTIME_DIR/deepdream/daemon.sock" in result.stderr


def one_line_error(result):
    """The error line of a daemon that refused to start; fails on a traceback or a second line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("content, message", [
    (b'weights = "r\xe9sum\xe9"\n', "is not UTF-8 text (byte 12)"),
    (b"queue_length = 2.7\n", "queue_length must be a whole number, got 2.7"),
])
def test_a_bad_config_file_is_one_line(tmp_path, content, message):
    (tmp_path / "daemon.toml").write_bytes(content)
    assert message in one_line_error(run_daemon("--config", str(tmp_path / "daemon.toml")))


def test_a_damaged_server_key_is_one_line(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "server.key_secret").write_text("not a key file\n")
    line = one_line_error(run_daemon("--curve-keys", str(keys), "--endpoint", f"tcp://0.0.0.0:{free_port()}"))
    assert "server.key_secret is damaged" in line and "make a new pair" in line


@pytest.mark.parametrize("case, words", [
    ("secret key 0644", "permissions 0644 for the secret key {keys}/server.key_secret are too open: other users "
                        "could read it and pose as this daemon. Run: chmod 600 {keys}/server.key_secret"),
    ("folder 0755", "permissions 0755 for the key folder {keys} are too open: other users could list and read the "
                    "daemon's keys. Run: chmod 700 {keys}"),
    ("authorized folder 0777", "for the authorized keys' folder {keys}/authorized_clients are too open: other users "
                               "could add keys of their own. Run: chmod go-w {keys}/authorized_clients"),
    ("client key 0666", "permissions 0666 for the client key {keys}/authorized_clients/alice.key are too open"),
    ("unreadable client key", "cannot read the client key {keys}/authorized_clients/bob.key ("),
    ("damaged client key", "the client key {keys}/authorized_clients/bob.key holds no CURVE public key"),
])
def test_keys_others_could_read_or_change_are_refused_at_start_naming_the_chmod(tmp_path, case, words):
    """As ssh refuses a private key others can read: the daemon used such keys without a word, and one
    unreadable file in authorized_clients/ left it answering no client at all."""
    import zmq.auth

    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    zmq.auth.create_certificates(str(keys), "server")
    (keys / "server.key_secret").chmod(0o644 if case == "secret key 0644" else 0o600)
    authorized = keys / "authorized_clients"
    authorized.mkdir()
    zmq.auth.create_certificates(str(tmp_path), "alice")
    (authorized / "alice.key").write_bytes((tmp_path / "alice.key").read_bytes())
    if case == "folder 0755":
        keys.chmod(0o755)
    elif case == "authorized folder 0777":
        authorized.chmod(0o777)
    elif case == "client key 0666":
        (authorized / "alice.key").chmod(0o666)
    elif case == "unreadable client key":
        (authorized / "bob.key").mkdir()  # unreadable even to root, who reads a file of mode 000
    elif case == "damaged client key":
        (authorized / "bob.key").write_text("not a key\n")
    line = one_line_error(run_daemon("--curve-keys", str(keys), "--endpoint", f"tcp://0.0.0.0:{free_port()}"))
    assert words.format(keys=keys) in line, line


@pytest.mark.slow
def test_curve_round_trip_with_keys_on_a_non_loopback_bind(tmp_path):
    keys = tmp_path / "keys"
    open_port = free_port()
    with start_daemon("--curve-keys", str(keys), "--endpoint", f"tcp://0.0.0.0:{open_port}"):
        assert stat.S_IMODE(keys.stat().st_mode) == 0o700
        for name in ("server.key", "server.key_secret"):
            assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600

        sock = zmq.Context.instance().socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        apply_client_curve(sock, str(keys))
        sock.connect(f"tcp://127.0.0.1:{open_port}")
        send(sock, *dream_request(photo(100, 120)))
        reply, data = receive(sock)
        sock.close()
        assert reply["type"] == "result" and result_array(reply, data).shape == (100, 120, 3)

        plain = connect(f"tcp://127.0.0.1:{open_port}")
        send(plain, request("ping"))
        assert not plain.poll(1500), "a client without the server key gets nothing"
        plain.close()


@pytest.mark.slow
def test_sigterm_mid_dream_answers_shutting_down_and_exits_0(tmp_path):
    notify_path = str(tmp_path / "notify")
    notifications = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notifications.bind(notify_path)
    daemon = start_daemon(env={"NOTIFY_SOCKET": notify_path})
    try:
        running_client, queued_client = connect(daemon.endpoint), connect(daemon.endpoint, zmq.REQ)
        running, payload = dream_request(photo(100, 120), LONG, progress=True)
        send(running_client, running, payload)
        assert receive(running_client)[0]["type"] == "progress"
        send(queued_client, *dream_request(photo(100, 120)))
        wait_for(lambda: ping(daemon.endpoint)["queued"] == 1, PROMPTLY_S, "a dream waits")

        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < PROMPTLY_S
        assert final(running_client, 5)[0]["code"] == "SHUTTING_DOWN"
        assert receive(queued_client, 5)[0]["code"] == "SHUTTING_DOWN"
        running_client.close(), queued_client.close()
    finally:
        daemon.stop()

    notifications.setblocking(False)
    received = []
    while True:
        try:
            received.append(notifications.recv(4096).decode())
        except BlockingIOError:
            break
    notifications.close()
    text = "\n".join(received)
    assert "READY=1" in text and "STOPPING=1" in text and "STATUS=" in text
