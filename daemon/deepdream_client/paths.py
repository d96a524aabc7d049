"""Where the project keeps its files for a user: the XDG base directories
(standard library only; the daemon, the client library and the plug-in share it)."""

import os
from pathlib import Path


def config_file(name, environ=os.environ):
    """$XDG_CONFIG_HOME/deepdream/NAME (default ~/.config): client.json, daemon.toml."""
    return _xdg(environ, "XDG_CONFIG_HOME", ".config") / name


def cache_file(name, environ=os.environ):
    """$XDG_CACHE_HOME/deepdream/NAME (default ~/.cache): the auto-started daemon's log."""
    return _xdg(environ, "XDG_CACHE_HOME", ".cache") / name


def data_dir(name, environ=os.environ):
    """$XDG_DATA_HOME/deepdream/NAME (default ~/.local/share): the daemon's models folder."""
    return _xdg(environ, "XDG_DATA_HOME", os.path.join(".local", "share")) / name


def _xdg(environ, variable, fallback):
    base = environ.get(variable) or os.path.join(os.path.expanduser("~"), fallback)
    return Path(base) / "deepdream"
