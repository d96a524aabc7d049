"""Where the project keeps its files for a user, in each system's own folders
(standard library only; the daemon, the client library, the plug-in and the
installer share it, so that what one writes the others find):

    Linux and other Unix   $XDG_CONFIG_HOME, $XDG_CACHE_HOME, $XDG_DATA_HOME (~/.config, ~/.cache, ~/.local/share)
    macOS                  ~/Library/Application Support (settings and models), ~/Library/Caches
    Windows                %APPDATA% (settings), %LOCALAPPDATA% (models, and the cache in its Cache folder)

each with a deepdream folder inside. `system` and `environ` are sys.platform and
os.environ unless a caller (the installer's tests) names another system's."""

import os
import sys
from pathlib import Path


def config_file(name, environ=os.environ, system=sys.platform):
    """The settings folder's NAME: client.json, daemon.toml."""
    return _base(environ, system, "config") / name


def cache_file(name, environ=os.environ, system=sys.platform):
    """The cache folder's NAME: the auto-started daemon's log, built test models."""
    return _base(environ, system, "cache") / name


def data_dir(name, environ=os.environ, system=sys.platform):
    """The data folder's NAME: the daemon's models folder."""
    return _base(environ, system, "data") / name


def home(environ=os.environ, system=sys.platform):
    """The user's home folder as `environ` has it (HOME; USERPROFILE on Windows)."""
    if system == "win32":
        return Path(environ.get("USERPROFILE") or os.path.expanduser("~"))
    return Path(environ.get("HOME") or os.path.expanduser("~"))


def _base(environ, system, kind):
    if system == "win32":
        if kind == "config":
            base = _windows_folder(environ, "APPDATA", "Roaming")
        else:  # models are large and this computer's: the local, not the roaming, profile
            base = _windows_folder(environ, "LOCALAPPDATA", "Local")
        return base / "deepdream" / ("Cache" if kind == "cache" else "")
    if system == "darwin":
        library = home(environ, system) / "Library"
        return library / ("Caches" if kind == "cache" else "Application Support") / "deepdream"
    variable, fallback = {"config": ("XDG_CONFIG_HOME", ".config"), "cache": ("XDG_CACHE_HOME", ".cache"),
                          "data": ("XDG_DATA_HOME", os.path.join(".local", "share"))}[kind]
    return Path(environ.get(variable) or home(environ, system) / fallback) / "deepdream"


def _windows_folder(environ, variable, under_appdata):
    """%APPDATA% or %LOCALAPPDATA%; from the home folder when a bare environment lacks them."""
    value = environ.get(variable)
    return Path(value) if value else home(environ, "win32") / "AppData" / under_appdata


def log_without_console(name):
    """Under Windows' pythonw.exe (the logon task's daemon and relay: no console
    window) there is no stderr, and the first log line would fail: send stdout
    and stderr to the cache folder's NAME instead. Elsewhere nothing changes."""
    if sys.stderr is not None:
        return
    path = cache_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout = sys.stderr = open(path, "a", buffering=1, encoding="utf-8", errors="replace")
