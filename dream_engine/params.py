"""DreamParams: what one dream should do, validated once at the edge."""

from dataclasses import asdict, dataclass, fields

from deepdream_common.quoting import shown  # these messages reach the wire, quoting a client's values
from deepdream_common.layer_spec import split_target, target_key
from deepdream_common.vocabulary import (DEFAULT_DETAIL, DEFAULT_LAYERS, DEFAULT_MODEL, DEFAULT_NORMALIZATION,
                                         LAYER_WEIGHTS, MAX_MODEL_NAME_CHARS, NORMALIZATIONS, OFF_VALUES, PARAMS)

from .errors import InvalidParams


@dataclass(frozen=True)
class DreamParams:
    """Names, defaults and ranges come from the shared vocabulary's PARAMS table."""

    # None: the model's own default targets (InceptionV3's DEFAULT_LAYERS; another network's, filled in by
    # the engine that loaded it, DreamEngine.with_default_layers).
    layers: dict = None
    octaves: int = PARAMS["octaves"].default
    octave_scale: float = PARAMS["octave_scale"].default
    steps: int = PARAMS["steps"].default
    step_size: float = PARAMS["step_size"].default
    tile_size: int = PARAMS["tile_size"].default  # 0: automatic, the fewest tiles the memory budget allows
    jitter: int = PARAMS["jitter"].default
    seed: int = PARAMS["seed"].default
    dream_size: float = PARAMS["dream_size"].default  # megapixels; 0: the network works at the image's own size
    detail: bool = DEFAULT_DETAIL  # re-inject the detail that downscaling an octave loses
    normalize: str = DEFAULT_NORMALIZATION  # how a step's gradient is normalized (NORMALIZATIONS)
    model: str = DEFAULT_MODEL  # the network: a built-in name or a model file's in the models folder (never a path)

    def __post_init__(self):
        if not isinstance(self.model, str) or not 0 < len(self.model) <= MAX_MODEL_NAME_CHARS:
            raise InvalidParams("model", f"must be a model's name (up to {MAX_MODEL_NAME_CHARS} characters), "
                                         f"got {shown(self.model)}")
        if self.layers is None and self.model == DEFAULT_MODEL:
            object.__setattr__(self, "layers", dict(DEFAULT_LAYERS))
        if self.layers is not None:
            object.__setattr__(self, "layers", _check_layers(self.layers))
        for name, param in PARAMS.items():
            value = getattr(self, name)
            off, meaning = OFF_VALUES.get(name, (None, ""))
            if value == off and type(value) in ((int,) if param.kind is int else (int, float)):  # not False
                continue
            check = _check_int if param.kind is int else _check_float
            check(name, value, param.low, param.high, f"{off} ({meaning}) or " if meaning else "")
        if not isinstance(self.detail, bool):
            raise InvalidParams("detail", f"must be true or false, got {shown(self.detail)}")
        if not isinstance(self.normalize, str) or self.normalize not in NORMALIZATIONS:
            raise InvalidParams("normalize", f"must be one of {', '.join(NORMALIZATIONS)}, got {shown(self.normalize)}")

    @classmethod
    def from_dict(cls, values):
        """Build from a plain mapping (a wire request, a CLI, a config file).

        Unknown keys are an error: a misspelt key silently ignored would give
        the user a dream they did not ask for."""
        if not isinstance(values, dict):
            raise InvalidParams("params", f"must be a map of parameter names to values, got {shown(values)}")
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise InvalidParams(
                    _named(key), f"unknown parameter; known parameters are {', '.join(sorted(known))}"
                )
        if "layers" in values and values["layers"] is None:  # None is the model's default inside, not on the wire
            raise InvalidParams("layers", "must be a map of layer name to weight or a list of layer names, got null; "
                                          "leave the key out to dream the model's default layers")
        return cls(**values)

    def to_dict(self):
        return asdict(self)


MAX_TARGET_CHARS = 1000  # a layer name and its channel list (a few hundred channels), as a request may spell it
# The most distinct targets (a layer, or a set of its channels) one dream may name: each is an output of the
# compiled step, and compiling, which a cancel cannot stop, grows with them (docs/protocol.md, section 11, has
# the measurement). Channels within one target cost nothing more.
MAX_TARGETS = 16


def _named(name):
    """A client's parameter or layer name inside a message's key: as it is when it is
    a plain name, else quoted and escaped, so that no name can forge a log line."""
    return name if isinstance(name, str) and name.isidentifier() and len(name) <= 60 else shown(name)


def _check_int(key, value, low, high, besides=""):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(key, f"must be a whole number, got {shown(value)}")
    if not low <= value <= high:
        raise InvalidParams(key, f"must be {besides}between {low} and {high}, got {value}")


def _check_float(key, value, low, high, besides=""):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidParams(key, f"must be a number, got {shown(value)}")
    if not low <= value <= high:  # also false for NaN
        raise InvalidParams(key, f"must be {besides}between {low} and {high}, got {value}")


def _check_layers(layers):
    """Accept {name: weight} or [names] (weight 1 each); a name may name channels
    ("mixed5[12,87]", deepdream_common.layer_spec), and is kept in its canonical
    spelling. Whether the layer and its channels exist is checked later, by the
    engine that knows the model."""
    if not isinstance(layers, (list, tuple, dict)) or not layers:
        raise InvalidParams("layers", "must be a non-empty map of layer name to weight, or a list of layer names")
    if len(layers) > MAX_TARGETS:  # before any is parsed: a 64 KiB header holds thousands
        raise InvalidParams("layers", f"names {len(layers)} targets; a dream may name at most {MAX_TARGETS} (each "
                                      f"costs compiling time and memory): put channels of one layer in one key, "
                                      f"e.g. mixed5[12,87,301]")
    for name in layers:  # before the pairs are read: a list or map as a name cannot be a key
        if not isinstance(name, str) or not name:
            raise InvalidParams("layers", f"layer names must be non-empty strings, got {shown(name)}")
    # A list's names weigh 1 each; read as pairs, not turned into a dict, so that a name listed twice is
    # refused below as a map's two spellings of one target are, not silently merged.
    pairs = layers.items() if isinstance(layers, dict) else ((name, 1.0) for name in layers)
    checked = {}
    for name, weight in pairs:
        if len(name) > MAX_TARGET_CHARS:  # the parser's messages repeat the name
            raise InvalidParams("layers", f"a layer key may have at most {MAX_TARGET_CHARS} characters (a name "
                                          f"and its channel list); this one has {len(name)} characters: {shown(name)}")
        try:
            key = target_key(*split_target(name))
        except ValueError as error:
            raise InvalidParams("layers", str(error)) from None
        if key in checked:
            raise InvalidParams("layers", f"{shown(name)} names the target {shown(key)} a second time; name each "
                                          f"target once")
        _check_float(f"layers.{_named(name)}", weight, *LAYER_WEIGHTS)
        checked[key] = float(weight)
    if not any(checked.values()):
        raise InvalidParams("layers", "at least one layer needs a non-zero weight")
    return checked
