"""How an error message or a log line quotes a value a client sent: bounded,
one line, never a Python repr. Standard library only: the engine quotes with it
too, and its messages reach the wire."""

import shlex
import sys

SHOWN_CHARS = 60  # how much of a client's value an error message or log line repeats
_SHOWN_DEPTH = 2  # nesting shown before "[...]"


def shown(value, limit=SHOWN_CHARS):
    """A client's value as an error message or a log line may repeat it: JSON-like
    (null, true, 3, "text", [1, 2], {"k": 1}), on one line, at most `limit`
    characters, nested at most two levels. Whatever the client sent (a string of
    64 KiB, a list nested 1000 deep, newlines meant to forge log lines), this
    costs little and cannot fail; Python's reprs (b'..', None) never reach a user."""
    pieces, room = [], [limit + 1]  # one character over the limit is enough to know it was cut

    def put(text):
        pieces.append(text[:max(room[0], 0)])
        room[0] -= len(text)

    def walk(item, depth):
        if room[0] <= 0:
            return
        if item is None:
            put("null")
        elif isinstance(item, bool):
            put("true" if item else "false")
        elif isinstance(item, int):
            put(str(item) if abs(item) < 10**30 else f"<a {item.bit_length()}-bit integer>")
        elif isinstance(item, float):
            put(repr(item))
        elif isinstance(item, str):
            put('"' + "".join(_escaped(char) for char in item[:room[0]]) + '"')
        elif isinstance(item, (bytes, bytearray, memoryview)):
            put(f"<binary, {len(item)} bytes>")
        elif isinstance(item, (list, tuple, dict)):
            is_map = isinstance(item, dict)
            opening, closing = "{}" if is_map else "[]"
            if depth >= _SHOWN_DEPTH:
                put(opening + "..." + closing)
                return
            put(opening)
            for number, entry in enumerate(item.items() if is_map else item):
                if room[0] <= 0:
                    break
                if number:
                    put(", ")
                if is_map:
                    walk(entry[0], depth + 1)
                    put(": ")
                    entry = entry[1]
                walk(entry, depth + 1)
            put(closing)
        else:
            put(f"<{type(item).__name__}>")

    walk(value, 0)
    text = "".join(pieces)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _escaped(char):
    """One character of a shown string: printable ones as they are, the rest (newlines,
    control and bidirectional-override characters) as escapes that cannot forge a line."""
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or (
        f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")


def command_line(argv, system=None):
    """A command as the user types it into their shell: POSIX sh quoting, or
    PowerShell's on Windows (a quoted program needs `&` there to be run)."""
    if (system or sys.platform) != "win32":
        return shlex.join(str(arg) for arg in argv)
    words = ["'" + arg.replace("'", "''") + "'" if _needs_quotes(arg) else arg for arg in map(str, argv)]
    return ("& " if words and words[0].startswith("'") else "") + " ".join(words)


def _needs_quotes(word):
    return not word or any(char in word for char in " \t'\"`$&;(){}[]@#,|<>")
