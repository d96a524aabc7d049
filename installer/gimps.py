"""Every GIMP 3 on this computer, and for each: the user plug-ins folder it reads,
the client.json its plug-in reads, and whether it can start programs outside a
sandbox. Read from GIMP's and the packagers' build files (what each system's
GIMP reads), tested on fake home folders; only the Linux distro GIMP runs here.

    Linux distro   $XDG_CONFIG_HOME/GIMP/3.x/plug-ins (~/.config)
    Flatpak        the same host folder: the Flatpak's xdg-config/GIMP permission mounts it over
                   ~/.var/app/org.gimp.GIMP/config/GIMP, so a copy in the latter is never seen; its
                   client.json is ~/.var/app/org.gimp.GIMP/config/deepdream (its XDG_CONFIG_HOME)
    Snap           ~/snap/gimp/current/.config/GIMP/3.x/plug-ins, client.json beside it (the snap's HOME)
    macOS          ~/Library/Application Support/GIMP/3.x/plug-ins
    Windows        %APPDATA%\\GIMP\\3.x\\plug-ins; the Microsoft Store's GIMP also reads its virtualised
                   copy, %LOCALAPPDATA%\\Packages\\GIMP.*\\LocalCache\\Roaming\\GIMP\\3.x\\plug-ins

A GIMP 3 that has never run has no folder yet: it is made, unless GIMP 2's
settings are there to be imported on GIMP 3's first start (a folder would stop that)."""

import plistlib
import re
from dataclasses import dataclass
from pathlib import Path

FLATPAK_ID = "org.gimp.GIMP"
SERIES = re.compile(r"^3\.\d+$")


@dataclass(frozen=True)
class Gimp:
    name: str  # for the user: "GIMP 3.0 (Flatpak)"
    plugins: Path  # its user plug-ins folder
    settings: Path  # the client.json its plug-in reads
    sandbox: str | None = None  # "Flatpak", "Snap", "Microsoft Store": it cannot start the daemon itself


def find(host):
    """(the GIMP 3s found, notes for the user) on `host`."""
    finders = {"win32": _windows, "darwin": _macos}.get(host.system, _linux)
    gimps, notes = [], []
    finders(host, gimps, notes)
    return gimps, notes


def named(host, folder):
    """--gimp-plugin-dir: one GIMP whose plug-ins folder the user names, reading this user's client.json."""
    return Gimp(f"GIMP ({folder})", Path(folder).expanduser(), host.config_file("client.json"))


def stale_copies(host):
    """Copies an older installer left where a GIMP never looks (the Flatpak's hidden folder)."""
    base = host.home / ".var" / "app" / FLATPAK_ID / "config" / "GIMP"
    return sorted(path for path in base.glob("3.*/plug-ins/deepdream") if path.is_dir())


def _series_in(base):
    """The 3.x folders under a GIMP settings folder."""
    return sorted((path.name for path in base.glob("3.*") if path.is_dir() and SERIES.match(path.name)),
                  key=lambda name: int(name.split(".")[1]))


def _add(gimps, notes, base, label, settings, installed=None, sandbox=None):
    """A GIMP 3.x per settings folder found under `base`, and one for `installed` (the series a GIMP
    installed says it is) when it has none yet."""
    series = _series_in(base)
    if installed and installed not in series:
        if any(base.glob("2.*")):
            notes.append(f"{label} {installed} is installed but has not run yet: start it once (it imports "
                         f"your GIMP 2 settings), then run the installer again")
        else:
            series.append(installed)
    for version in series:
        gimps.append(Gimp(f"{label} {version}" + (f" ({sandbox})" if sandbox else ""),
                          base / version / "plug-ins", settings, sandbox))


def _series(text):
    """'3.0' from a version string such as 'GIMP version 3.0.4' or 'Version: 3.2.0', else None."""
    found = re.search(r"\b(3\.\d+)(?:\.\d+)?\b", text or "")
    return found.group(1) if found else None


def _linux(host, gimps, notes):
    config = host.env_path("XDG_CONFIG_HOME", ".config")
    native = None
    for program in ("gimp-3.2", "gimp-3.0", "gimp"):
        status, output = host.run([program, "--version"])  # 127 when it is not there
        if status == 0 and _series(output):
            native = _series(output)
            break
    status, output = host.run(["flatpak", "info", FLATPAK_ID])
    version = re.search(r"Version:.*", output) if status == 0 else None
    flatpak = _series(version.group(0)) if version else None
    _add(gimps, notes, config / "GIMP", "GIMP", host.config_file("client.json"), native)
    if flatpak or (host.home / ".var" / "app" / FLATPAK_ID).is_dir():  # installed, or it has run
        settings = host.home / ".var" / "app" / FLATPAK_ID / "config" / "deepdream" / "client.json"
        _add(gimps, notes, config / "GIMP", "GIMP", settings, flatpak, "Flatpak")
    snap = host.home / "snap" / "gimp" / "current"
    if snap.is_dir():
        status, output = host.run(["snap", "list", "gimp"])
        installed = _series(output.splitlines()[-1]) if status == 0 and output else None
        _add(gimps, notes, snap / ".config" / "GIMP", "GIMP", snap / ".config" / "deepdream" / "client.json",
             installed, "Snap")


def _macos(host, gimps, notes):
    installed = None
    for apps in (Path("/Applications"), host.home / "Applications"):
        for app in sorted(apps.glob("GIMP*.app")):
            try:
                with open(app / "Contents" / "Info.plist", "rb") as handle:
                    installed = _series(str(plistlib.load(handle).get("CFBundleShortVersionString"))) or installed
            except (OSError, plistlib.InvalidFileException, ValueError):
                continue
    base = host.home / "Library" / "Application Support" / "GIMP"
    _add(gimps, notes, base, "GIMP", host.config_file("client.json"), installed)


def _windows(host, gimps, notes):
    appdata = host.env_path("APPDATA", "AppData/Roaming")
    local = host.env_path("LOCALAPPDATA", "AppData/Local")
    installed = None
    for programs in (Path(host.environ.get("ProgramFiles", "C:/Program Files")), local / "Programs"):
        for exe in sorted(programs.glob("GIMP 3*/bin/gimp-3*.exe")):
            installed = _series(exe.stem.replace("gimp-", "")) or installed
    store = sorted(path for path in (local / "Packages").glob("GIMP.*") if path.is_dir())
    _add(gimps, notes, appdata / "GIMP", "GIMP", host.config_file("client.json"), installed)
    for package in store:
        roaming = package / "LocalCache" / "Roaming"
        if _series_in(roaming / "GIMP"):  # what it wrote itself, it reads from its private copy of %APPDATA%
            _add(gimps, notes, roaming / "GIMP", "GIMP", roaming / "deepdream" / "client.json", None,
                 "Microsoft Store")
        elif _series_in(appdata / "GIMP"):  # else it reads %APPDATA% itself
            _add(gimps, notes, appdata / "GIMP", "GIMP", host.config_file("client.json"), None, "Microsoft Store")
        else:
            notes.append("GIMP from the Microsoft Store has not run yet: start it once, then run install.ps1 again")
