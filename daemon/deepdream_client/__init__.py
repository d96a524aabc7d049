"""The DeepDream client library: everything a program needs to talk to
deepdream-daemon (the wire protocol, DreamClient, the shared vocabulary).

Pure Python with pyzmq and msgpack; GIMP's plug-in imports a copy of this
package. The names below load on first use, so `deepdream_client.vocabulary`
(standard library only) can be imported where ZeroMQ is not installed, by the
engine for instance."""

_EXPORTS = {
    "DreamClient": "client", "DreamResult": "client", "DaemonError": "client",
    "DaemonUnavailable": "client", "SettingsError": "client", "ZoomFrame": "client", "ZoomResult": "client",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
