"""python -m installer: set up DeepDream for GIMP from this folder (install.sh and
install.ps1 run it). Safe to run again."""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import gimps, plugin, python_env, services
from .host import Host
from .python_env import REPO, InstallError

EPILOG = """\
It makes .venv in this folder with the engine, the daemon and the CLI (deepdream, deepdream-daemon), puts the
GIMP plug-in into every GIMP 3 it finds (a distro's, Flatpak, Snap, Windows and its Microsoft Store copy, macOS),
and records in client.json how GIMP finds and starts the daemon. Where GIMP cannot start programs outside its
sandbox (Flatpak, Snap, Microsoft Store) it also installs the daemon as a user service, as --service does.
"""


def parser(system):
    script = "install.ps1" if system == "win32" else "install.sh"
    options = argparse.ArgumentParser(prog=script, description="Set up DeepDream for GIMP from this folder.",
                                      epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--dev", action="store_true",
                         help="also the test tools, and on Linux the GIMP 3.0 and 3.2 test roots (needs root or sudo)")
    options.add_argument("--service", action="store_true",
                         help="run the daemon (or, with --relay-to, the relay) as a user service that starts when "
                              "you log in: systemd on Linux, launchd on macOS, a logon task on Windows")
    options.add_argument("--gimp-plugin-dir", metavar="DIR", type=Path,
                         help="install the GIMP plug-in into DIR instead of every GIMP 3 plug-ins folder found")
    options.add_argument("--no-gimp", action="store_true", help="do not install the GIMP plug-in")
    options.add_argument("--cpu", action="store_true",
                         help="the CPU builds only, even where nvidia-smi sees an NVIDIA GPU (by default a GPU "
                              "seen on Linux means TensorFlow with its CUDA libraries, tensorflow[and-cuda])")
    options.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                         help="the Keras backend the daemon and the CLI dream with (default tensorflow); jax and "
                              "torch are installed beside TensorFlow and recorded in daemon.toml. torch from PyPI "
                              "is a CUDA build of several GB on Linux")
    relay = options.add_argument_group(
        "a daemon on another computer", "GIMP's Python cannot speak CURVE: a relay on this computer does, and GIMP "
                                        "talks to it (deepdream relay --help)")
    relay.add_argument("--relay-to", metavar="ENDPOINT", help="the remote daemon, e.g. tcp://gpu-box:5555: GIMP "
                                                              "then starts (or the service runs) the relay to it")
    relay.add_argument("--server-key", metavar="KEY", help="the remote daemon's public key (a file, or its "
                                                           "40-character text)")
    relay.add_argument("--client-key", metavar="FILE", help="this computer's secret key file, for a daemon that "
                                                            "lists its authorized clients")
    return options


def main(argv=None, host=None):
    host = host or Host()
    options = parser(host.system)
    args = options.parse_args(argv)
    if args.relay_to and not args.server_key:
        options.error("--relay-to needs --server-key (the remote daemon's public key)")
    try:
        install(host, args)
    except (InstallError, OSError) as error:  # a folder it may not write, a disk full: said, not a traceback
        print(f"{options.prog}: {error}", file=sys.stderr)
        return 1
    return 0


def say(text):
    print(f"==> {text}", flush=True)


def note(text):
    print(f"    {text}", flush=True)


def install(host, args):
    python_env.check_python(system=host.system)
    venv = REPO / ".venv"
    python = python_env.make_venv(host, venv, say)
    extras = python_env.extras(args.dev, args.backend)
    if args.backend == "torch" and host.system == "linux" and host.run([python, "-c", "import torch"])[0] != 0:
        say("Note: PyTorch from PyPI is a CUDA build of several GB (on a CPU-only machine too); for a small CPU-only "
            "build, install torch first from PyTorch's own CPU index (pytorch.org, Get Started), then run this again")
    log = venv / "pip-install.log"
    if python_env.installed_for(venv, extras):
        say(f"{venv} is up to date (pyproject.toml has not changed since its last install)")
    else:
        say(f"Installing the deepdream package{extras} into {venv} (TensorFlow is large: the first run takes a few "
            f"minutes)")
        python_env.pip_install(host, python, ["--upgrade", "pip"], log)
        python_env.pip_install(host, python, ["-e", f"{REPO}{extras}"], log)
        python_env.stamp(venv, extras)
    gpu = None if args.cpu else python_env.nvidia_gpu(host)
    if gpu and python_env.cuda_packages(host, args.backend):
        say(f"NVIDIA GPU seen ({gpu}): installing the CUDA libraries (--cpu skips this)")
        python_env.pip_install(host, python, python_env.cuda_packages(host, args.backend), log)
    elif gpu:
        say(f"NVIDIA GPU seen ({gpu}); TensorFlow has no GPU build for this system: the torch backend can use it "
            f"(--backend torch, with torch installed from pytorch.org's CUDA index first)")

    command, module = daemon_command(host, venv, args)
    found = [] if args.no_gimp else install_plugins(host, python, args)
    service = None
    sandboxed = sorted({gimp.sandbox for gimp in found if gimp.sandbox})
    if args.service or sandboxed:
        if sandboxed and not args.service:
            say(f"GIMP from {' and '.join(sandboxed)} cannot start programs outside its sandbox: installing the "
                f"{'relay' if args.relay_to else 'daemon'} as a user service, which starts when you log in")
        service = services.install(host, "relay" if args.relay_to else "daemon", command, module)
        for line in service.lines:
            note(line)
    for settings in sorted({gimp.settings for gimp in found}):
        say(plugin.record_client(settings, command, service.start if service else None, host.system))

    if args.dev:
        install_haproxy(host)
        build_test_roots(host)
    if args.backend:
        path = python_env.record_backend(host, args.backend)
        say(f'Recorded backend = "{args.backend}" in {path} (the daemon\'s --backend or DEEPDREAM_BACKEND still win)')
    daemon = host.venv_program(venv, "deepdream-daemon")
    status, output = host.run([daemon, "--print-device"], timeout=600)
    say(f"The daemon will dream with {output.splitlines()[-1] if output else 'an unknown device'}"
        + ("" if status == 0 else " (it could not say more)"))
    cli = host.venv_program(venv, "deepdream")
    say(f"Done. Try:  {cli} dream photo.jpg dreamed.png --weights random")


def daemon_command(host, venv, args):
    """What GIMP (or the service) runs: the venv's daemon, or the relay to a remote one; and the same as
    `python -m` arguments."""
    if not args.relay_to:
        return [host.venv_program(venv, "deepdream-daemon")], ["deepdream_daemon"]
    relay = ["relay", "--to", args.relay_to, "--server-key", _key(args.server_key)]
    if args.client_key:
        relay += ["--client-key", str(Path(args.client_key).expanduser().resolve())]
    return [host.venv_program(venv, "deepdream"), *relay], ["deepdream_cli", *relay]


def _key(value):
    """A key file's absolute path (the service does not run in this folder), or the key's text as given."""
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else value


def install_plugins(host, python, args):
    """The plug-in into every GIMP found (or the one folder named); the GIMPs it went into."""
    if args.gimp_plugin_dir:
        found, notes = [gimps.named(host, args.gimp_plugin_dir)], []
    else:
        found, notes = gimps.find(host)
    for line in notes:
        say(line)
    if not found:
        say("GIMP plug-in: no GIMP 3 found (GIMP 2.10 cannot run Python 3 plug-ins).")
        note("After installing GIMP 3 from gimp.org (or your distribution, Flathub, the Snap Store or the Microsoft "
             "Store) and starting it once, run the installer again, or name the folder with --gimp-plugin-dir")
        return []
    status, msgpack_dir = host.run([python, "-c", "import msgpack, os; print(os.path.dirname(msgpack.__file__))"])
    if status != 0:
        raise InstallError(f"the venv's Python has no msgpack ({msgpack_dir}); run the installer again")
    by_folder = {}
    for gimp in found:
        by_folder.setdefault(gimp.plugins, []).append(gimp.name)
    for folder, names in by_folder.items():
        dest = plugin.copy_plugin(folder, msgpack_dir.strip(), executable=not host.windows)
        say(f"GIMP plug-in installed for {' and '.join(names)}: {dest} (Filters > DeepDream... after GIMP restarts)")
    for stale in gimps.stale_copies(host):
        shutil.rmtree(stale, ignore_errors=True)
        say(f"Removed {stale}: an older installer's copy, where the Flatpak GIMP never looks")
    return found


def build_test_roots(host):
    """The GIMP 3.0 and 3.2 test roots (tests/gimp/make-root.sh: debootstrap, so Linux and root only)."""
    if host.system != "linux":
        say("The GIMP test roots are built on Linux only (debootstrap); the GIMP tests are left out here")
        return
    for series in ("3.0", "3.2"):
        say(f"Building the GIMP {series} test root (cached; the first time takes a few minutes)")
        run_as_root(host, [str(REPO / "tests" / "gimp" / "make-root.sh"), "--gimp", series],
                    "building the GIMP test roots")


def install_haproxy(host):
    """HAProxy, which tests/test_balancer.py runs in front of three daemons (a studio's one address): apt's
    package on Debian and Ubuntu. Elsewhere the test is left out, except in CI, where it fails."""
    if host.which("haproxy") or Path("/usr/sbin/haproxy").exists():  # Debian's is in sbin, off a user's PATH
        return
    if host.system != "linux" or not host.which("apt-get"):
        say("HAProxy is not installed, so tests/test_balancer.py is left out: install your system's haproxy "
            "package to run it")
        return
    say("Installing HAProxy for tests/test_balancer.py: apt-get install haproxy")
    run_as_root(host, ["apt-get", "update", "-qq"], "installing HAProxy")
    run_as_root(host, ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "haproxy"],
                "installing HAProxy")


def run_as_root(host, command, doing):
    """Run `command` as root (through sudo unless the installer is root), its output for the user as it goes."""
    if os.geteuid() != 0:
        if not host.which("sudo"):
            raise InstallError(f"{doing} needs root: run the installer as root, or install sudo")
        command = ["sudo", *command]
    if subprocess.run(command).returncode != 0:
        raise InstallError(f"{' '.join(command)} failed (its output is above)")


if __name__ == "__main__":
    sys.exit(main())
