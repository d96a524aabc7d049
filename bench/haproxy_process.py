"""A real HAProxy in a subprocess, running the repository's deploy/haproxy/deepdream.cfg pointed at daemons here.

    with start_haproxy([("d1", endpoint1, agent_port1), ("d2", endpoint2, agent_port2)], free_port()) as balancer:
        DreamClient(balancer.endpoint).dream(...)
        balancer.servers()["d1"]["status"]   # "UP", "DOWN (agent)", ...: HAProxy's own view, from its stats socket

Only the lines that name addresses are replaced (bind, server, stats socket): the balancing, the checks, the
agent and the timeouts are the shipped ones, so the test and the benchmark measure the file a studio installs."""

import csv
import io
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "haproxy" / "deepdream.cfg"
START_TIMEOUT_S = 10


def haproxy_binary():
    """haproxy's path, or None; Debian puts it in /usr/sbin, which a user's PATH may lack."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")


def configuration(listen_port, servers, stats_socket):
    """CONFIG with its frontend on 127.0.0.1:`listen_port`, its stats socket at `stats_socket` and its server lines
    replaced by `servers`: (name, host, port, agent port) each. ValueError if the file no longer has the lines
    replaced: a shipped file this cannot point here would be tested only in part."""
    lines, found = [], set()
    for line in CONFIG.read_text().splitlines():
        words = line.split()
        if words[:1] == ["bind"]:
            found.add("bind")
            line = f"    bind 127.0.0.1:{listen_port}"
        elif words[:2] == ["stats", "socket"]:
            found.add("stats")
            line = f"    stats socket {stats_socket} mode 600 level admin"
        elif words[:1] == ["server"]:
            if "server" not in found:
                lines += [f"    server {name} {host}:{port} agent-port {agent}" for name, host, port, agent in servers]
            found.add("server")
            continue
        lines.append(line)
    if found != {"bind", "stats", "server"}:
        raise ValueError(f"{CONFIG} has no {', '.join(sorted({'bind', 'stats', 'server'} - found))} line to point "
                         f"at the test's daemons")
    return "\n".join(lines) + "\n"


class HAProxy:
    def __init__(self, process, port, stats_socket, log_path):
        self.process = process
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.stats_socket = stats_socket
        self.log_path = log_path

    def servers(self):
        """HAProxy's `show stat` for each server, by name: status ("UP", "DOWN (agent)", "DRAIN (agent)", ...),
        last_agt (what the agent said last), stot (connections it was given), ..."""
        with socket.socket(socket.AF_UNIX) as stats:
            stats.connect(self.stats_socket)
            stats.sendall(b"show stat\n")
            text = stats.makefile(encoding="utf-8").read()
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: row for row in rows if row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_for(self, condition, timeout, what):
        """Wait until condition(servers()) holds; AssertionError naming `what` and HAProxy's view if it does not."""
        deadline = time.monotonic() + timeout
        while not condition(servers := self.servers()):
            if time.monotonic() > deadline:
                view = {name: (row["status"], row["last_agt"]) for name, row in servers.items()}
                raise AssertionError(f"HAProxy did not see {what} within {timeout} s: {view}")
            time.sleep(0.1)
        return servers

    def log_text(self):
        return Path(self.log_path).read_text(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def start_haproxy(daemons, port):
    """HAProxy on loopback `port` (a free one) in front of `daemons`: (name, endpoint, agent port) each, a daemon
    started with --agent-port; returns once it runs. RuntimeError (with its log) if it does not."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is not installed (Debian and Ubuntu: apt-get install haproxy; install.sh --dev "
                           "installs it)")
    scratch = tempfile.mkdtemp(prefix="deepdream-haproxy-")
    stats_socket = os.path.join(scratch, "stats.sock")
    servers = [(name, urlsplit(endpoint).hostname, urlsplit(endpoint).port, agent) for name, endpoint, agent in daemons]
    config = Path(scratch, "deepdream.cfg")
    config.write_text(configuration(port, servers, stats_socket))
    log_path = os.path.join(scratch, "haproxy.log")
    with open(log_path, "wb") as log:  # -db: in the foreground, so that this process owns it
        process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    balancer = HAProxy(process, port, stats_socket, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        try:
            balancer.servers()
            return balancer
        except OSError:
            time.sleep(0.1)  # the stats socket is made once the configuration is read
    balancer.stop()
    raise RuntimeError(f"haproxy did not start (exit status {process.returncode}):\n{balancer.log_text()}")
