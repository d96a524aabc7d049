"""The layer-spec text the CLI and the GIMP plug-in take, and the keys of the wire's `layers` map.

"mixed2:1,mixed5" -> {"mixed2": 1.0, "mixed5": 1.0}. A term may name channels of its layer:
"mixed4:1,mixed5[12,87]:0.5" -> {"mixed4": 1.0, "mixed5[12,87]": 0.5}; the key "mixed5[12,87]" is
what goes on the wire, and split_target("mixed5[12,87]") -> ("mixed5", (12, 87)) is what the
engine and the daemon read from it. Channel numbers are distinct non-negative integers; their order
does not matter (a term excites its channels together), so keys are written with the channels
sorted and the same target always has the same key. Whitespace around names, numbers and brackets
is tolerated. Whether a channel exists in its layer is the daemon's check, not this module's.
Standard library only (GIMP's Python imports it)."""

EXAMPLE = "mixed4:1,mixed5[12,87]:0.5"


def parse_layers(text):
    """NAME[:WEIGHT] or NAME[C1,C2,...][:WEIGHT], comma-separated -> {key: weight}; a term without
    a weight weighs 1; keys are target_key()'s canonical text. ValueError with a message for the
    user on a bad weight, a malformed channel list or no layer at all."""
    layers = {}
    for item in filter(None, (part.strip() for part in _split_terms(text))):
        weight_at = item.find(":", item.rfind("]") + 1)  # a ':' inside a channel list is the channel's error
        target, weight = (item, "") if weight_at < 0 else (item[:weight_at], item[weight_at + 1:])
        try:
            value = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"{item!r}: the weight after ':' must be a number (write NAME, NAME:WEIGHT or "
                             f"NAME[CHANNELS]:WEIGHT, e.g. {EXAMPLE})") from None
        layers[target_key(*split_target(target))] = value
    if not layers:
        raise ValueError(f"no layer named: give at least one, e.g. {EXAMPLE}")
    return layers


def format_layers(layers):
    """{key: weight} -> the text parse_layers reads back:
    {"mixed2": 1.0, "mixed5[3]": 0.5} -> "mixed2:1,mixed5[3]:0.5"."""
    return ",".join(f"{key}:{weight:g}" for key, weight in layers.items())


def split_target(key):
    """A `layers` key -> (layer name, sorted tuple of channel numbers, or None for the whole layer):
    "mixed5" -> ("mixed5", None), "mixed5[87, 12]" -> ("mixed5", (12, 87)).
    ValueError with a message for the user on anything else (empty name, unclosed or empty brackets,
    a channel that is not a non-negative integer, a channel named twice, text after "]")."""
    name, bracket, rest = key.partition("[")
    name = name.strip()
    if not name:
        raise ValueError(f"{key!r}: a layer name is missing (e.g. {EXAMPLE})")
    if "]" in name:
        raise ValueError(f"{key!r}: ']' without '[' (write NAME[C1,C2,...], e.g. {EXAMPLE})")
    if not bracket:
        return name, None
    inside, closed, after = rest.partition("]")
    if not closed:
        raise ValueError(f"{key!r}: the channel list has no closing ']' (write NAME[C1,C2,...], e.g. {EXAMPLE})")
    if after.strip():
        raise ValueError(f"{key!r}: unexpected {after.strip()!r} after the channel list")
    if not inside.strip():
        raise ValueError(f"{key!r}: the channel list is empty; write {name} alone for all its channels")
    channels = [_channel(key, text) for text in inside.split(",")]
    repeated = sorted({channel for channel in channels if channels.count(channel) > 1})
    if repeated:
        raise ValueError(f"{key!r}: channel {', '.join(map(str, repeated))} named more than once")
    return name, tuple(sorted(channels))


def target_key(name, channels=None):
    """The canonical `layers` key of a layer, or of some of its channels: ("mixed5", (12, 87)) -> "mixed5[12,87]"."""
    return name if channels is None else f"{name}[{','.join(map(str, sorted(channels)))}]"


def _channel(key, text):
    text = text.strip()
    if not text.isascii() or not text.isdigit():  # isdigit() alone takes "²"; int() takes "-1" and "+1"
        raise ValueError(f"{key!r}: channel {text!r} is not a non-negative integer (channels count from 0)")
    return int(text)


def _split_terms(text):
    """Split at the commas between terms, not those inside a channel list."""
    terms, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth <= 0:
            terms.append(text[start:index])
            start, depth = index + 1, 0
    terms.append(text[start:])
    return terms
