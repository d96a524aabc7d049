"""The layer-spec text the CLI and the GIMP plug-in take: "mixed2:1,mixed5" ->
{"mixed2": 1.0, "mixed5": 1.0}. Standard library only."""

EXAMPLE = "mixed2:1,mixed5:1"


def parse_layers(text):
    """NAME[:WEIGHT],... -> {name: weight}; a name without a weight weighs 1.
    ValueError with a message for the user on a bad weight or no layer at all."""
    layers = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight = item.partition(":")
        try:
            layers[name.strip()] = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"{item!r}: the weight after ':' must be a number (write NAME or NAME:WEIGHT, "
                             f"e.g. {EXAMPLE})") from None
    if not layers:
        raise ValueError(f"no layer named: give at least one, e.g. {EXAMPLE}")
    return layers


def format_layers(layers):
    """{name: weight} -> the text parse_layers reads back: {"mixed2": 1.0} -> "mixed2:1"."""
    return ",".join(f"{name}:{weight:g}" for name, weight in layers.items())
