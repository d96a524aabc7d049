"""Drive a real GIMP 3 in a Debian root that tests/gimp/make-root.sh builds: GIMP 3.0 (trixie)
or GIMP 3.2 (forky), each in a root of its own.

Each test session gets its own folder inside the root (ROOT/tmp/deepdream-tests-PID,
seen from inside as /tmp/deepdream-tests-PID) holding GIMP's config folder
(XDG_CONFIG_HOME, so the plug-in and its client.json are this run's alone), the
input images and what the batch scripts write back."""

import io
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
from PIL import Image

from installer.plugin import copy_plugin

REPO = Path(__file__).resolve().parents[2]
PRELUDE = (Path(__file__).with_name("in_gimp.py")).read_text()
MAKE_ROOT = REPO / "tests/gimp/make-root.sh"
VERSIONS = ("3.0", "3.2")  # the GIMP series the tests run on, each in its own root
STAMP = ".deepdream-root"
GIMP_TIMEOUT_S = 180


def root_of(version):
    """Where the root of GIMP `version` is: make-root.sh says, so the two never disagree."""
    where = subprocess.run([str(MAKE_ROOT), "--gimp", version, "--print"], capture_output=True, text=True, check=True)
    return Path(where.stdout.strip())


def root_or_skip(version):
    """The built root of GIMP `version`; a missing one fails under CI (CI must prove the plug-in) and
    skips elsewhere."""
    root = root_of(version)
    problem = None
    if not (root / STAMP).is_file() or not (root / f"usr/bin/gimp-console-{version}").exists():
        problem = (f"no GIMP {version} test root at {root}: build it with"
                   f" `sudo tests/gimp/make-root.sh --gimp {version}` (or ./install.sh --dev)")
    elif os.geteuid() != 0:
        problem = "the GIMP 3 tests chroot into the test root and need root"
    if problem:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    return root


class GimpRoot:
    def __init__(self, root, version):
        self.root = root
        self.version = version
        self.console_program = f"gimp-console-{version}"  # headless, for batch scripts
        self.gui_program = f"gimp-{version}"
        self.inside = f"/tmp/deepdream-tests-{os.getpid()}"  # path as GIMP sees it
        self.work = root / self.inside.lstrip("/")  # the same folder, seen from the host
        self.config = self.work / "config"  # XDG_CONFIG_HOME inside: GIMP/<version> and deepdream/client.json
        self.plugin_dir = self.config / "GIMP" / version / "plug-ins"  # each series reads its own folder

    def setup(self):
        shutil.rmtree(self.work, ignore_errors=True)
        self.plugin_dir.mkdir(parents=True)
        # A GIMP run for the first time shows a Welcome dialog (3.2 over the image window); a user closes it
        # once, the tests say so up front.
        (self.plugin_dir.parent / "gimprc").write_text("(show-welcome-dialog no)\n")
        mount_proc(self.root)
        # The installer's own copy step (installer/plugin.py): the plug-in, the client library and msgpack's
        # pure-Python files. The tests write the root's client.json where they need one.
        copy_plugin(self.plugin_dir, os.path.dirname(msgpack.__file__))
        return self

    def cleanup(self):
        shutil.rmtree(self.work, ignore_errors=True)
        # The last test run out unmounts /proc, whichever run mounted it (test runs may overlap).
        others = list((self.root / "tmp").glob("deepdream-tests-*"))
        if not others and os.path.ismount(self.root / "proc"):
            subprocess.run(["umount", "--lazy", str(self.root / "proc")], check=False)

    def host(self, name):
        return self.work / name

    def path(self, name):
        return f"{self.inside}/{name}"

    def write_client_config(self, settings):
        path = self.config / "deepdream" / "client.json"
        if settings is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings))

    def environment(self, **extra):
        env = {"HOME": "/root", "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8",
               "XDG_CONFIG_HOME": self.path("config"), "XDG_CACHE_HOME": self.path("cache"),
               "DD_WORK": self.inside}
        env.update(extra)
        return [f"{key}={value}" for key, value in env.items()]

    def command(self, program, *args, **env):
        return ["chroot", str(self.root), "/usr/bin/env", "-i", *self.environment(**env), program, *args]

    def batch(self, script, **env):
        """Popen of gimp-console running PRELUDE + script; stdout and stderr together."""
        (self.work / "results.json").unlink(missing_ok=True)
        process = subprocess.Popen(
            self.command(self.console_program, "-i", "--batch-interpreter=python-fu-eval", "-b", "-", "--quit",
                         **env),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        process.stdin.write(PRELUDE + "\n" + script)
        process.stdin.close()
        return process

    def run_batch(self, script, timeout=GIMP_TIMEOUT_S, **env):
        """Run a batch script to its end; (results.json as a dict, GIMP's output)."""
        process = self.batch(script, **env)
        try:
            output = process.stdout.read() if wait_for(process, timeout) else None
        finally:
            stop(process)
        if output is None:
            pytest.fail(f"GIMP did not finish within {timeout} s")
        return self.results(), output

    def results(self):
        path = self.work / "results.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def read(self, name):
        return (self.work / name).read_bytes()

    def plugin_processes(self):
        """Pids of this run's DeepDream plug-in processes (each of its runs is one)."""
        return self.processes_running(self.path(f"config/GIMP/{self.version}/plug-ins/deepdream/deepdream.py"))

    def processes_running(self, needle):
        """Pids of processes whose command line contains `needle` (this run's folder makes it unique)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if needle.encode() in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    pass
        return pids


def mount_proc(root):
    """Mounts /proc in the root unless it is there. GIMP 3.2's image loaders
    (glycin, through gdk-pixbuf) probe their bwrap sandbox and read /proc: without it they take the sandbox
    for working, every icon fails to load and GIMP's window aborts at start. With /proc they see that bwrap
    cannot make namespaces here and load unsandboxed, as they would in any container."""
    proc = root / "proc"
    if not os.path.ismount(proc):
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)


def wait_for(process, timeout):
    try:
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def stop(process):
    """End a process this harness started (its own session: GIMP and its plug-ins)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        if not wait_for(process, 10):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def poll(condition, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


class Screen:
    """Xvfb inside the root, on a display number it picks itself (-displayfd), and helpers for
    xdotool and ImageMagick's import, both run inside the root too."""

    def __init__(self, gimp, size=(1280, 800)):
        self.gimp = gimp
        read, write = os.pipe()
        self.process = subprocess.Popen(
            gimp.command("Xvfb", "-displayfd", str(write), "-screen", "0", f"{size[0]}x{size[1]}x24",
                         "-nolisten", "tcp"),
            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(write)
        with os.fdopen(read) as handle:
            number = handle.readline().strip()  # empty if Xvfb died
        if not number:
            stop(self.process)
            raise RuntimeError("Xvfb did not start in the GIMP root")
        self.display = f":{number}"

    def run(self, *args, check=True, timeout=30):
        return subprocess.run(self.gimp.command(*args, DISPLAY=self.display), capture_output=True, text=True,
                              timeout=timeout, check=check).stdout

    def xdotool(self, *args, timeout=30):
        return self.run("xdotool", *map(str, args), check=False, timeout=timeout)

    def click(self, x, y):
        self.xdotool("mousemove", x, y, "click", 1)

    def window_names(self, pattern):
        return [name for name in self.xdotool("search", "--name", pattern, "getwindowname", "%@").splitlines() if name]

    def windows(self, pattern):
        return [int(word) for word in self.xdotool("search", "--onlyvisible", "--name", pattern).split()]

    def wait_window(self, pattern, timeout):
        """The first visible window whose name matches, once it is there (xdotool --sync); None after `timeout` s."""
        try:
            found = self.xdotool("search", "--sync", "--onlyvisible", "--name", pattern, timeout=timeout).split()
        except subprocess.TimeoutExpired:
            return None
        return int(found[0]) if found else None

    def geometry(self):
        """{window: (x, y, width, height)} of every visible window bigger than GTK's 1x1 helpers; menus
        and combo-box lists are nameless windows of their own, so they show up here when they open."""
        shell = self.xdotool("search", "--onlyvisible", "--name", "", "getwindowgeometry", "--shell", "%@")
        windows, fields = {}, {}
        for line in shell.splitlines():
            key, _, value = line.partition("=")
            fields[key] = int(value) if value.lstrip("-").isdigit() else 0
            if key == "SCREEN":
                if fields["WIDTH"] > 1 and fields["HEIGHT"] > 1:
                    windows[fields["WINDOW"]] = (fields["X"], fields["Y"], fields["WIDTH"], fields["HEIGHT"])
                fields = {}
        return windows

    def popup(self, before, timeout=10):
        """The window (a menu, a list) that opened since `before` (a geometry()); None after `timeout` s."""
        opened = poll(lambda: [w for w in self.geometry() if w not in before], timeout)
        return opened[0] if opened else None

    def wait_closed(self, window, timeout):
        """True once `window` is no longer visible."""
        return poll(lambda: window not in self.geometry(), timeout)

    def settled(self, timeout=10):
        """A screenshot (an RGB array) once two in a row are equal: GTK has drawn what was asked."""
        previous = None
        deadline = time.monotonic() + timeout
        while True:
            current = self.pixels()
            if previous is not None and (np.array_equal(previous, current) or time.monotonic() > deadline):
                return current
            previous = current

    def pixels(self, window="root"):
        """The screen (or one window) as an RGB array, straight from ImageMagick's import."""
        return np.asarray(Image.open(io.BytesIO(self.capture(window))).convert("RGB"))

    def capture(self, window="root"):
        """A PNG of the screen (or one window), as bytes."""
        return subprocess.run(self.gimp.command("import", "-window", str(window), "png:-", DISPLAY=self.display),
                              capture_output=True, timeout=30, check=True).stdout

    def close(self):
        stop(self.process)
