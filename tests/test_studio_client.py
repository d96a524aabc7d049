"""What an artist's computer needs to dream on a studio's daemons: the client package (client/pyproject.toml)
without TensorFlow, a `deepdream` whose daemon commands import no engine, a CURVE key pair of its own, and no
daemon started here for another computer's address."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import zmq
import zmq.auth
from PIL import Image

from deepdream_client.client import DreamClient
from deepdream_client.readiness import NotReady, ensure_daemon
from deepdream_daemon.security import check_client_keys
from images import photo

REPO = Path(__file__).resolve().parent.parent
ENGINE = ("tensorflow", "keras", "jax", "torch", "dream_engine", "deepdream_daemon")  # not in the client package
# `deepdream` as the client package installs it: everything else is unimportable, and every attempt is told.
WITHOUT_ENGINE = f"""
import atexit, importlib.abc, sys
attempts = []
class ClientPackageOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {ENGINE!r}:
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, ClientPackageOnly())
atexit.register(lambda: print("attempted:", sorted(set(attempts)), file=sys.stderr))
from deepdream_cli.cli import main
sys.exit(main(sys.argv[1:]))
"""


def client_only(*args, env=None):
    return subprocess.run([sys.executable, "-c", WITHOUT_ENGINE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def attempted(done):
    return set(re.search(r"attempted: \[(.*)\]", done.stderr).group(1).replace("'", "").split(", ")) - {""}


def test_the_client_package_is_the_client_and_the_cli_without_tensorflow(tmp_path):
    # Built from a copy laid out as the repository is: setuptools builds in the project's folder, and a build/
    # left in the checkout would put files deleted since into later wheels.
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "client", tree / "client", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    for package in ("daemon/deepdream_client", "daemon/deepdream_cli", "deepdream_common"):
        shutil.copytree(REPO / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp_path), str(tree / "client")], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = zipfile.ZipFile(next(tmp_path.glob("deepdream_client-*.whl")))
    tops = {name.split("/")[0] for name in wheel.namelist()}
    info = next(top for top in tops if top.endswith(".dist-info"))
    assert tops - {info} == {"deepdream_common", "deepdream_client", "deepdream_cli"}
    metadata = wheel.read(f"{info}/METADATA").decode()
    requires = {re.split(r"[<>=! ;\[]", line.split(":", 1)[1].strip())[0].lower()
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    assert requires == {"pyzmq", "msgpack", "numpy", "pillow"}
    assert "deepdream = deepdream_cli.cli:main" in wheel.read(f"{info}/entry_points.txt").decode()
    whole = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(r"^Version: (.+)$", metadata, re.M).group(1) == whole


def test_its_deepdream_dreams_on_a_daemon_and_imports_no_engine(daemon, tmp_path):
    Image.fromarray(photo(96, 128)).save(tmp_path / "in.png")
    endpoint = ["--endpoint", daemon.endpoint]
    for command in (["ping", *endpoint], ["info", *endpoint],
                    ["dream", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--octaves", "1", "--steps", "2",
                     "-q", *endpoint]):
        done = client_only(*command)
        assert done.returncode == 0, done.stdout + done.stderr
        # Only the optional check of a dream's parameters looks for the engine; nothing imports Keras's stack.
        assert attempted(done) <= {"dream_engine"}, done.stderr
    assert Image.open(tmp_path / "out.png").size == (128, 96)
    # A value out of range, which the engine would have caught here, is the daemon's refusal instead.
    done = client_only("dream", str(tmp_path / "in.png"), str(tmp_path / "x.png"), "--octaves", "99", *endpoint)
    assert done.returncode == 1 and "octaves" in done.stderr and "INVALID_PARAMS" in done.stderr, done.stderr
    done = client_only("dream", str(tmp_path / "in.png"), str(tmp_path / "x.png"), "--in-process")
    assert done.returncode == 1, done.stderr
    assert "deepdream: this installation (the client package, deepdream-client) has no engine to dream in this " \
           "process: start a daemon, or point --endpoint at one" in done.stderr


def test_deepdream_keys_makes_a_pair_a_daemon_accepts_and_never_overwrites_one(tmp_path):
    folder = tmp_path / "keys"
    done = client_only("keys", "laptop", "--dir", str(folder))
    assert done.returncode == 0, done.stderr
    public, secret = folder / "laptop.key", folder / "laptop.key_secret"
    assert f'"client_key": "{secret}"' in done.stdout
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(secret.stat().st_mode) == 0o600
    pair = zmq.auth.load_certificate(str(secret))
    assert zmq.auth.load_certificate(str(public))[0] == pair[0] == zmq.curve_public(pair[1])
    authorized = tmp_path / "daemon-keys" / "authorized_clients"
    authorized.mkdir(parents=True)
    shutil.copy(public, authorized)
    check_client_keys(authorized)  # what the daemon checks at start: no refusal
    again = client_only("keys", "laptop", "--dir", str(folder))
    assert again.returncode == 1 and f"{public} exists already" in again.stderr
    assert zmq.auth.load_certificate(str(secret)) == pair


def test_no_daemon_is_started_here_for_another_computers_address(tmp_path, monkeypatch):
    """The plug-in's auto-start would run a daemon told to bind the remote address: it must say instead that the
    remote daemon does not answer."""
    marker = tmp_path / "started"
    remote = "tcp://192.0.2.7:5555"  # TEST-NET-1: no such computer answers
    settings = tmp_path / "config" / "deepdream"
    settings.mkdir(parents=True)
    (settings / "client.json").write_text(json.dumps(
        {"endpoint": remote, "start_command": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]}))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("DEEPDREAM_ENDPOINT", raising=False)
    with DreamClient() as client, pytest.raises(NotReady) as refused:
        ensure_daemon(client)
    assert str(refused.value).startswith(f"No DeepDream daemon answers at {remote}. That is another computer's "
                                         f"address, so none is started here")
    assert f".venv/bin/deepdream ping --endpoint {remote}" in str(refused.value)
    assert not marker.exists()
