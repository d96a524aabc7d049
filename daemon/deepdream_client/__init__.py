"""The DeepDream client library: everything a program needs to talk to
deepdream-daemon (the wire protocol, DreamClient, its settings); the vocabulary it
shares with the daemon and the engine is deepdream_common.

Pure Python with pyzmq and msgpack; GIMP's plug-in imports a copy of this
package. The names below load on first use, so `deepdream_client.paths`
(standard library only) can be imported where ZeroMQ is not installed."""

_EXPORTS = {
    "DreamClient": "client", "DreamResult": "client", "DaemonError": "client",
    "DaemonUnavailable": "client", "SettingsError": "settings", "ZoomFrame": "client", "ZoomResult": "client",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
