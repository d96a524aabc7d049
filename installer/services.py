"""The daemon, or the relay, as a user service that starts when the user logs in:
a systemd user unit on Linux, a launchd agent on macOS, a Task Scheduler logon
task on Windows (run by pythonw.exe, so that no console window opens). Safe to
run again: the service is rewritten and restarted, so new code is picked up.

Each install returns a Service: what it starts, the command the user (or the
plug-in's message) types to start it now, and where its log is."""

import plistlib
import subprocess  # list2cmdline: a command line as Windows programs split it
import tempfile
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from xml.sax.saxutils import escape

from deepdream_common.quoting import command_line

NAMES = {"daemon": ("deepdream", "DeepDream daemon: a warm InceptionV3 on ZeroMQ for GIMP, the CLI and scripts"),
         "relay": ("deepdream-relay", "DeepDream relay: this computer's plain clients to a remote daemon, over CURVE")}
LAUNCHD_LABEL = "org.deepdream.{}"


@dataclass
class Service:
    name: str
    start: str  # the command that starts it now, as the user types it
    running: bool  # started now; False where the service manager could not be reached
    lines: list  # what to tell the user


def install(host, kind, argv, module_argv):
    """Install `kind` ("daemon" or "relay") to run `argv` (the venv's console script and its arguments);
    `module_argv` is the same as `python -m` arguments, for pythonw.exe on Windows."""
    installer = {"win32": _windows_task, "darwin": _launchd_agent}.get(host.system, _systemd_unit)
    return installer(host, kind, argv, module_argv)


def _systemd_unit(host, kind, argv, module_argv):
    unit, description = NAMES[kind]
    folder = host.env_path("XDG_CONFIG_HOME", ".config") / "systemd" / "user"
    folder.mkdir(parents=True, exist_ok=True)
    # The daemon tells systemd when its model is loaded (sd_notify); the relay is ready at once.
    ready = "Type=notify\nNotifyAccess=main\n# The first start may download the ImageNet weights.\n" \
            "TimeoutStartSec=600\n" if kind == "daemon" else "Type=simple\n"
    text = (f"# Written by the DeepDream installer (installer/services.py); it rewrites this file when run again.\n"
            f"[Unit]\nDescription={description}\nAfter=network.target\n\n"
            f"[Service]\n{ready}ExecStart={_systemd_quoted(argv)}\nRestart=on-failure\nRestartSec=5\n"
            f"# SIGTERM ends a running dream at its next step; a big step on a CPU can take a while.\n"
            f"TimeoutStopSec=60\nEnvironment=PYTHONUNBUFFERED=1\n\n[Install]\nWantedBy=default.target\n")
    path = folder / f"{unit}.service"
    _write(path, text)
    start = f"systemctl --user start {unit}"
    lines = [f"Installed the user service {path}"]
    status, output = host.run(["systemctl", "--user", "show-environment"])
    if status != 0:
        return Service(unit, start, False, lines + [
            "systemd --user is not available here (a container, or no user session): the service will start at "
            "your next login where it is; until then run it by hand:", "    " + command_line(argv, host.system)])
    for step in (["daemon-reload"], ["enable", f"{unit}.service"], ["restart", f"{unit}.service"]):
        status, output = host.run(["systemctl", "--user", *step])
        if status != 0:
            return Service(unit, start, False, lines + [f"systemctl --user {' '.join(step)} failed: {output}"])
    return Service(unit, start, True, lines + [
        f"{unit}.service is enabled and starting" + (" (the model loads in the background)" if kind == "daemon"
                                                     else ""),
        f"status: systemctl --user status {unit}    logs: journalctl --user -u {unit} -f",
        'to keep it running while you are logged out: loginctl enable-linger "$USER"'])


def _systemd_quoted(argv):
    """ExecStart's words, each in double quotes (systemd splits on spaces and expands % and $)."""
    return " ".join('"' + str(arg).replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
                    .replace("$", "$$") + '"' for arg in argv)


def _launchd_agent(host, kind, argv, module_argv):
    label = LAUNCHD_LABEL.format(kind)
    path = host.home / "Library" / "LaunchAgents" / f"{label}.plist"
    log = host.cache_file(f"{kind}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    agent = {"Label": label, "ProgramArguments": [str(arg) for arg in argv], "RunAtLoad": True,
             "KeepAlive": {"SuccessfulExit": False},  # restarted after a crash, not after a clean stop
             "StandardOutPath": str(log), "StandardErrorPath": str(log),
             "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"}, "ProcessType": "Interactive"}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, plistlib.dumps(agent).decode())
    status, uid = host.run(["id", "-u"])
    domain = f"gui/{uid.strip()}" if status == 0 else "gui/$(id -u)"
    start = f"launchctl kickstart {domain}/{label}"
    lines = [f"Installed the launchd agent {path} (it starts when you log in; its log is {log})"]
    host.run(["launchctl", "bootout", f"{domain}/{label}"])  # an older copy, if loaded; fails harmlessly if not
    status, output = host.run(["launchctl", "bootstrap", domain, str(path)])
    if status != 0:
        return Service(label, start, False, lines + [f"launchctl bootstrap failed ({output}); it starts at your "
                                                     f"next login, or now with: {start}"])
    return Service(label, start, True, lines + [f"{label} is loaded and starting; stop it with: "
                                                f"launchctl bootout {domain}/{label}"])


def _windows_task(host, kind, argv, module_argv):
    task = NAMES[kind][1].split(":")[0]  # "DeepDream daemon", "DeepDream relay"
    pythonw = PureWindowsPath(argv[0]).parent / "pythonw.exe"  # beside the venv's console scripts
    user = "\\".join(part for part in (host.environ.get("USERDOMAIN"), host.environ.get("USERNAME")) if part)
    xml = f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo><Description>{escape(NAMES[kind][1])}</Description></RegistrationInfo>
  <Triggers><LogonTrigger><Enabled>true</Enabled><UserId>{escape(user)}</UserId></LogonTrigger></Triggers>
  <Principals><Principal id="Author"><UserId>{escape(user)}</UserId><LogonType>InteractiveToken</LogonType>
    <RunLevel>LeastPrivilege</RunLevel></Principal></Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure><Interval>PT1M</Interval><Count>3</Count></RestartOnFailure>
  </Settings>
  <Actions Context="Author"><Exec><Command>{escape(str(pythonw))}</Command>
    <Arguments>{escape(subprocess.list2cmdline(["-m", *map(str, module_argv)]))}</Arguments></Exec></Actions>
</Task>
"""
    start = command_line(["schtasks", "/Run", "/TN", task], "win32")
    log = host.cache_file(f"{kind}.log")
    with tempfile.TemporaryDirectory() as scratch:
        definition = Path(scratch) / "task.xml"
        definition.write_text(xml, encoding="utf-16")
        status, output = host.run(["schtasks", "/Create", "/TN", task, "/XML", str(definition), "/F"])
    lines = [f'The logon task "{task}" runs {pythonw} -m {" ".join(module_argv)} when you log in (its log is {log})']
    if status != 0:
        return Service(task, start, False, [f'Could not create the logon task "{task}": {output}',
                                            "Start it by hand in PowerShell with:",
                                            "    " + command_line(argv, "win32")])
    host.run(["schtasks", "/End", "/TN", task])  # an older copy, if running: the new code starts below
    status, output = host.run(["schtasks", "/Run", "/TN", task])
    running = status == 0
    return Service(task, start, running, lines + ([f'"{task}" is starting'] if running else
                                                  [f"schtasks /Run failed ({output}); it starts at your next login"]))


def _write(path, text):
    temporary = Path(str(path) + ".new")
    temporary.write_text(text)
    temporary.replace(path)
