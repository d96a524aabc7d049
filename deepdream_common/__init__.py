"""The facts every part of DeepDream for GIMP shares, in the standard library alone: the wire's
vocabulary (ops, error codes, formats, limits, each parameter's range, default, label and help,
presets), the layer-spec syntax ("mixed4[12,87]:1") and how a client's value is quoted in a message.
The engine, the daemon, the client library, the CLI, the installer and the GIMP plug-in (a copy in its
folder) import it; it imports nothing of the project."""
