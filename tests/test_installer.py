"""The installer (installer/): every system's GIMP folders, services and messages on
fake home and AppData trees with the system faked (Windows, macOS, Flatpak and Snap
cannot be had here: their folders are the ones GIMP's and the packagers' build files
name), and on Linux the real thing: install.sh on a fake home, then the installed
plug-in's own code, in a Python with neither pyzmq nor msgpack as GIMP's is, starts
the daemon the installer recorded and dreams."""

import json
import os
import plistlib
import re
import signal
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from bench.daemon_process import free_port
from deepdream_client import readiness
from installer import MIN_PYTHON, gimps, plugin, services
from installer.__main__ import main as installer_main
from installer.host import Host
from installer.python_env import InstallError, check_python

REPO = Path(__file__).resolve().parent.parent


class Commands:
    """The programs a faked system runs: answers by program name, and every call kept."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        if argv[0] == "schtasks" and "/XML" in argv:  # the task's definition lives only while schtasks runs
            self.task_xml = Path(argv[argv.index("/XML") + 1]).read_text(encoding="utf-16")
        answer = self.answers.get(Path(argv[0]).name, (127, "not found"))
        return answer(argv) if callable(answer) else answer


def folders(root, *names):
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    return root


def test_a_flatpak_gimp_gets_the_plugin_in_the_host_folder_it_really_reads(tmp_path):
    home = folders(tmp_path, ".config/GIMP/3.0", ".var/app/org.gimp.GIMP/config/GIMP/3.0/plug-ins/deepdream")
    commands = Commands({"flatpak": (0, "GNU Image Manipulation Program\n  ID: org.gimp.GIMP\n  Version: 3.0.4")})
    host = Host("linux", {"HOME": str(home)}, commands)
    found, notes = gimps.find(host)
    flatpak = [gimp for gimp in found if gimp.sandbox == "Flatpak"]
    assert [gimp.plugins for gimp in flatpak] == [home / ".config/GIMP/3.0/plug-ins"]
    assert flatpak[0].settings == home / ".var/app/org.gimp.GIMP/config/deepdream/client.json"
    assert gimps.stale_copies(host) == [home / ".var/app/org.gimp.GIMP/config/GIMP/3.0/plug-ins/deepdream"]


def test_a_flatpak_that_never_ran_gets_its_series_folder(tmp_path):
    commands = Commands({"flatpak": (0, "Version: 3.2.0")})
    found, _ = gimps.find(Host("linux", {"HOME": str(tmp_path)}, commands))
    assert [(gimp.plugins, gimp.sandbox) for gimp in found] == [(tmp_path / ".config/GIMP/3.2/plug-ins", "Flatpak")]


def test_a_snap_gimp_reads_its_own_home(tmp_path):
    folders(tmp_path, "snap/gimp/current/.config/GIMP/3.0")
    found, _ = gimps.find(Host("linux", {"HOME": str(tmp_path)}, Commands()))
    snap = tmp_path / "snap/gimp/current/.config"
    assert [(gimp.plugins, gimp.settings, gimp.sandbox) for gimp in found] == [
        (snap / "GIMP/3.0/plug-ins", snap / "deepdream/client.json", "Snap")]


def test_a_distro_gimp_that_never_ran_gets_a_folder_unless_gimp_2_settings_wait_to_be_imported(tmp_path):
    commands = Commands({"gimp-3.0": (0, "GNU Image Manipulation Program version 3.0.4")})
    config = tmp_path / "xdg"
    found, notes = gimps.find(Host("linux", {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(config)}, commands))
    assert [(gimp.plugins, gimp.sandbox) for gimp in found] == [(config / "GIMP/3.0/plug-ins", None)]
    assert found[0].settings == config / "deepdream/client.json" and notes == []
    folders(config, "GIMP/2.10")
    found, notes = gimps.find(Host("linux", {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(config)}, commands))
    assert found == [] and notes == ["GIMP 3.0 is installed but has not run yet: start it once (it imports your "
                                     "GIMP 2 settings), then run the installer again"]


def test_windows_gimp_and_the_microsoft_store_copy(tmp_path):
    appdata, local = tmp_path / "AppData/Roaming", tmp_path / "AppData/Local"
    store = local / "Packages/GIMP.GIMP_22tz9m7y6x3mm/LocalCache/Roaming"
    folders(tmp_path, "AppData/Roaming/GIMP/3.0", f"{store.relative_to(tmp_path)}/GIMP/3.0")
    environ = {"USERPROFILE": str(tmp_path), "APPDATA": str(appdata), "LOCALAPPDATA": str(local)}
    found, _ = gimps.find(Host("win32", environ, Commands()))
    assert [(gimp.plugins, gimp.settings, gimp.sandbox) for gimp in found] == [
        (appdata / "GIMP/3.0/plug-ins", appdata / "deepdream/client.json", None),
        (store / "GIMP/3.0/plug-ins", store / "deepdream/client.json", "Microsoft Store")]


def test_a_windows_gimp_installed_but_never_run_is_found_by_its_program(tmp_path):
    program_files = folders(tmp_path, "Program Files/GIMP 3/bin") / "Program Files"
    (program_files / "GIMP 3/bin/gimp-3.2.exe").write_bytes(b"MZ")
    environ = {"APPDATA": str(tmp_path / "Roaming"), "LOCALAPPDATA": str(tmp_path / "Local"),
               "ProgramFiles": str(program_files)}
    found, _ = gimps.find(Host("win32", environ, Commands()))
    assert [gimp.plugins for gimp in found] == [tmp_path / "Roaming/GIMP/3.2/plug-ins"]


def test_macos_gimp_folders_and_the_app_s_version(tmp_path):
    folders(tmp_path, "Library/Application Support/GIMP/3.0", "Applications/GIMP.app/Contents")
    plist = tmp_path / "Applications/GIMP.app/Contents/Info.plist"
    plist.write_bytes(plistlib.dumps({"CFBundleShortVersionString": "3.2.1"}))
    found, _ = gimps.find(Host("darwin", {"HOME": str(tmp_path)}, Commands()))
    support = tmp_path / "Library/Application Support"
    assert [(gimp.plugins, gimp.settings) for gimp in found] == [
        (support / "GIMP/3.0/plug-ins", support / "deepdream/client.json"),
        (support / "GIMP/3.2/plug-ins", support / "deepdream/client.json")]


def test_the_plugin_copy_needs_nothing_compiled_and_replaces_an_old_one(tmp_path):
    import msgpack
    old = folders(tmp_path, "plug-ins/deepdream/daemon") / "plug-ins"
    dest = plugin.copy_plugin(old, os.path.dirname(msgpack.__file__))
    assert not (dest / "daemon").exists() and not (tmp_path / "plug-ins/deepdream.new").exists()
    assert os.access(dest / "deepdream.py", os.X_OK)
    assert {"dialog.py", "canvas.py", "pixels.py"} <= {path.name for path in dest.iterdir()}
    assert sorted(path.name for path in (dest / "msgpack").iterdir()) == sorted(
        [path.name for path in Path(msgpack.__file__).parent.glob("*.py")] + ["COPYING"])
    assert "Apache License" in (dest / "msgpack" / "COPYING").read_text(), "msgpack's license travels with it"
    assert {path.name for path in (dest / "deepdream_client").iterdir()} >= {"client.py", "zmtp.py", "paths.py"}
    assert {path.name for path in (dest / "deepdream_common").iterdir()} >= {"vocabulary.py", "quoting.py"}


def test_client_json_says_when_it_changes_which_daemon_gimp_starts(tmp_path):
    """A second install from another folder used to rewrite client.json silently; the user's own keys stay."""
    config = tmp_path / "deepdream" / "client.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"endpoint": "tcp://127.0.0.1:7777"}))
    other, ours = "/other checkout/.venv/bin/deepdream-daemon", str(REPO / ".venv/bin/deepdream-daemon")
    said = plugin.record_client(config, [other], system="linux")
    assert said == f"GIMP starts the daemon when needed with '{other}' (recorded in {config})"
    assert "unchanged" in plugin.record_client(config, [other], system="linux")
    assert plugin.record_client(config, [ours], "systemctl --user start deepdream", system="linux") == (
        f"Changed {config}: GIMP now starts the daemon with {ours}, no longer with '{other}'")
    assert json.loads(config.read_text()) == {"endpoint": "tcp://127.0.0.1:7777", "start_command": [ours],
                                              "service_start": "systemctl --user start deepdream"}
    config.write_text("{not json")
    assert "could not be read" in plugin.record_client(config, [ours]) and config.read_text() == "{not json"


def test_linux_service_is_a_systemd_user_unit(tmp_path):
    commands = Commands({"systemctl": (0, "")})
    host = Host("linux", {"HOME": str(tmp_path)}, commands)
    daemon = tmp_path / "my venv/bin/deepdream-daemon"
    service = services.install(host, "daemon", [daemon], ["deepdream_daemon"])
    unit = (tmp_path / ".config/systemd/user/deepdream.service").read_text()
    assert f'ExecStart="{daemon}"' in unit and "Type=notify" in unit
    assert ["systemctl", "--user", "enable", "deepdream.service"] in commands.calls
    assert service.running and service.start == "systemctl --user start deepdream"
    relay = services.install(host, "relay", [tmp_path / "deepdream", "relay", "--to", "tcp://gpu:5555"], [])
    unit = (tmp_path / ".config/systemd/user/deepdream-relay.service").read_text()
    assert f'ExecStart="{tmp_path}/deepdream" "relay" "--to" "tcp://gpu:5555"' in unit and "Type=simple" in unit
    assert relay.start == "systemctl --user start deepdream-relay"


def test_macos_service_is_a_launchd_agent(tmp_path):
    commands = Commands({"id": (0, "501"), "launchctl": (0, "")})
    host = Host("darwin", {"HOME": str(tmp_path)}, commands)
    service = services.install(host, "daemon", ["/Users/a/dd/.venv/bin/deepdream-daemon"], ["deepdream_daemon"])
    agent = plistlib.loads((tmp_path / "Library/LaunchAgents/org.deepdream.daemon.plist").read_bytes())
    assert agent["ProgramArguments"] == ["/Users/a/dd/.venv/bin/deepdream-daemon"] and agent["RunAtLoad"]
    assert agent["StandardErrorPath"] == str(tmp_path / "Library/Caches/deepdream/daemon.log")
    assert ["launchctl", "bootstrap", "gui/501", str(tmp_path / "Library/LaunchAgents/org.deepdream.daemon.plist")] \
        in commands.calls
    assert service.start == "launchctl kickstart gui/501/org.deepdream.daemon"


def test_windows_service_is_a_logon_task_without_a_console_window(tmp_path):
    commands = Commands({"schtasks": (0, "SUCCESS")})
    environ = {"USERPROFILE": str(tmp_path), "APPDATA": str(tmp_path / "Roaming"),
               "LOCALAPPDATA": str(tmp_path / "Local"), "USERDOMAIN": "STUDIO", "USERNAME": "ada"}
    venv_scripts = r"C:\Users\ada\Deep Dream\.venv\Scripts"
    service = services.install(Host("win32", environ, commands), "relay",
                               [venv_scripts + r"\deepdream.exe", "relay", "--to", "tcp://gpu:5555"],
                               ["deepdream_cli", "relay", "--to", "tcp://gpu:5555", "--server-key", "a key.pub"])
    task = ElementTree.fromstring(commands.task_xml.encode("utf-16"))
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    assert task.find("t:Triggers/t:LogonTrigger/t:UserId", ns).text == r"STUDIO\ada"
    assert task.find("t:Actions/t:Exec/t:Command", ns).text.endswith(r"\pythonw.exe")  # no console window
    assert task.find("t:Actions/t:Exec/t:Arguments", ns).text == (
        '-m deepdream_cli relay --to tcp://gpu:5555 --server-key "a key.pub"')
    assert task.find("t:Principals/t:Principal/t:RunLevel", ns).text == "LeastPrivilege"
    assert ["schtasks", "/Run", "/TN", "DeepDream relay"] in commands.calls
    assert service.start == "schtasks /Run /TN 'DeepDream relay'"


def test_user_folders_follow_each_system(tmp_path):
    from deepdream_client import paths
    windows = {"APPDATA": r"C:\Users\ada\AppData\Roaming", "LOCALAPPDATA": r"C:\Users\ada\AppData\Local"}
    assert str(paths.config_file("client.json", windows, "win32")).endswith(r"Roaming/deepdream/client.json")
    assert "Local/deepdream/Cache" in str(paths.cache_file("daemon.log", windows, "win32"))
    mac = {"HOME": "/Users/ada", "XDG_CONFIG_HOME": "/ignored"}
    assert paths.config_file("daemon.toml", mac, "darwin") == Path(
        "/Users/ada/Library/Application Support/deepdream/daemon.toml")
    assert paths.data_dir("models", {"HOME": "/home/ada"}, "linux") == Path("/home/ada/.local/share/deepdream/models")


@pytest.mark.parametrize("system, sandbox, service, wanted, unwanted", [
    ("win32", None, None, [r".venv\Scripts\deepdream-daemon.exe", "PowerShell", "install.ps1"],
     ["sudo", "apt", ".venv/bin", "install.sh"]),
    ("linux", "Snap", "systemctl --user start deepdream", ["Snap package", "systemctl --user start deepdream"],
     ["sudo", "apt", ".venv"]),
    ("linux", "Flatpak", None, ["Flatpak package", "install.sh --service"], ["sudo", "apt"]),
    ("darwin", None, None, ["Terminal", ".venv/bin/deepdream-daemon", "install.sh"], ["sudo", "apt", "Scripts"]),
])
def test_no_daemon_advice_fits_the_system(monkeypatch, system, sandbox, service, wanted, unwanted):
    monkeypatch.setattr(sys, "platform", system)
    monkeypatch.setattr(readiness, "sandbox", lambda: sandbox)
    command = ["/home/ada/dd/.venv/bin/deepdream-daemon"] if sandbox == "Flatpak" else None
    message = readiness.start_command_hint("tcp://127.0.0.1:5555", command, service)
    for text in wanted:
        assert text in message, message
    for text in unwanted:
        assert text not in message, message


def test_a_start_command_that_fails_names_the_command_and_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(readiness.NotReady) as failure:
        readiness.start_daemon([str(tmp_path / "gone" / "deepdream-daemon")], "tcp://127.0.0.1:5555")
    message = str(failure.value)
    assert (f"No DeepDream daemon answers at tcp://127.0.0.1:5555, and starting one with {tmp_path}/gone/"
            f"deepdream-daemon failed: No such file or directory.") in message
    assert "install.sh" in message and "[" not in message and "Errno" not in message


def test_the_installer_and_pyproject_agree_on_the_oldest_python():
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert wanted == ">=" + ".".join(map(str, MIN_PYTHON))
    check_python(MIN_PYTHON)
    with pytest.raises(InstallError, match=r"needs Python 3\.11 or newer, and this is Python 3\.10.*winget"):
        check_python((3, 10, 12), "win32")
    text = (REPO / "install.sh").read_text() + (REPO / "install.ps1").read_text()
    assert re.findall(r"version_info < \((\d+), (\d+)\)", text) == [tuple(map(str, MIN_PYTHON))] * 2


def test_relay_options_need_the_server_key(capsys):
    with pytest.raises(SystemExit) as exit_:
        installer_main(["--relay-to", "tcp://gpu:5555"], Host("linux", {"HOME": "/nonexistent"}, Commands()))
    assert exit_.value.code == 2 and "--relay-to needs --server-key" in capsys.readouterr().err


@pytest.mark.slow
def test_install_sh_on_a_fresh_home_then_the_plugin_starts_the_daemon_and_dreams(tmp_path):
    """The Linux install for real (its venv is CI's, already up to date: pip is skipped), into a home with
    a GIMP 3.0 that has run; then the installed plug-in folder's client, under this machine's python3, which
    has neither pyzmq nor msgpack (GIMP's Python on official builds has neither), starts the daemon with the
    command the installer recorded and dreams over its own ZMTP."""
    home = folders(tmp_path, ".config/GIMP/3.0", ".config/deepdream")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    (home / ".config/deepdream/client.json").write_text(json.dumps({"endpoint": endpoint}))
    (home / ".config/deepdream/daemon.toml").write_text('weights = "random"\n')  # no ImageNet download here
    env = {key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "DEEPDREAM_"))}
    env["HOME"] = str(home)
    install = subprocess.run([str(REPO / "install.sh")], env=env, capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr
    plugins = home / ".config/GIMP/3.0/plug-ins/deepdream"
    assert f"GIMP plug-in installed for GIMP 3.0: {plugins}" in install.stdout
    recorded = json.loads((home / ".config/deepdream/client.json").read_text())
    assert recorded == {"endpoint": endpoint, "start_command": [str(REPO / ".venv/bin/deepdream-daemon")]}
    # The plug-in's client in a Python of the standard library alone (-S: no site-packages), as GIMP's is:
    # neither pyzmq nor msgpack nor numpy. It dreams raw pixels, as the plug-in does.
    script = f"""
import random, sys
sys.path.insert(0, {str(plugins)!r})
from deepdream_client.client import DreamClient
from deepdream_client.readiness import ensure_daemon
with DreamClient() as client:
    ensure_daemon(client)
    pixels = bytes(random.Random(1).randrange(256) for _ in range(96 * 128 * 3))
    result = client.dream(pixels, 128, 96, 3, params={{"octaves": 1, "steps": 2}})
    change = sum(abs(a - b) for a, b in zip(result.pixels, pixels)) / len(pixels)
    print("dreamed", client.transport, len(result.pixels), round(change, 2))
"""
    first = subprocess.run([str(REPO / ".venv/bin/python"), "-I", "-S", "-c", script], env=env, capture_output=True,
                           text=True, timeout=300)
    stop_daemon_at(endpoint)
    assert first.returncode == 0, first.stdout + first.stderr
    transport, size, change = re.search(r"dreamed (\w+) (\d+) ([\d.]+)", first.stdout).groups()
    assert (transport, int(size)) == ("zmtp", 96 * 128 * 3) and float(change) > 1, first.stdout


def stop_daemon_at(endpoint):
    """The auto-started daemon is detached from everything: found by the endpoint it was told to use."""
    for proc in Path("/proc").iterdir():
        try:
            if f"DEEPDREAM_ENDPOINT={endpoint}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGTERM)
        except (OSError, ValueError):
            continue
    time.sleep(0.5)
