"""deepdream_common/layer_spec.py: the layer-spec text of the CLI and the dialog, with channel targets
(issue 13), and the wire keys it produces. Fast: standard library only, no TensorFlow."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepdream_common.layer_spec import format_layers, parse_layers, split_target, target_key


def test_plain_layers_read_as_before():
    assert parse_layers("mixed2:1,mixed5:0.5") == {"mixed2": 1.0, "mixed5": 0.5}
    assert parse_layers("mixed2, mixed5") == {"mixed2": 1.0, "mixed5": 1.0}


def test_channel_targets_become_wire_keys():
    assert parse_layers("mixed4:1,mixed5[12,87]:0.5") == {"mixed4": 1.0, "mixed5[12,87]": 0.5}
    assert parse_layers("mixed5[3]") == {"mixed5[3]": 1.0}


def test_channel_lists_are_written_sorted_and_tolerate_spaces():
    assert parse_layers(" mixed5 [ 87 , 12 ] : 0.5 , mixed4 ") == {"mixed5[12,87]": 0.5, "mixed4": 1.0}


def test_a_layer_and_some_of_its_channels_are_two_terms():
    assert parse_layers("mixed5,mixed5[1]:2") == {"mixed5": 1.0, "mixed5[1]": 2.0}


def test_split_target_gives_the_engine_name_and_channels():
    assert split_target("mixed5") == ("mixed5", None)
    assert split_target("mixed5[12,87]") == ("mixed5", (12, 87))
    assert split_target("block4_conv3[ 7, 0 ]") == ("block4_conv3", (0, 7))


def test_target_key_is_split_targets_inverse():
    assert target_key("mixed5") == "mixed5"
    assert target_key("mixed5", (87, 12)) == "mixed5[12,87]"
    assert split_target(target_key("mixed5", (3, 1))) == ("mixed5", (1, 3))


@pytest.mark.parametrize("key, message", [
    ("", "layer name is missing"),
    ("[1,2]", "layer name is missing"),
    ("mixed5[1,2", "no closing ']'"),
    ("mixed5]", "']' without '['"),
    ("mixed5[]", "channel list is empty; write mixed5 alone"),
    ("mixed5[ ]", "channel list is empty"),
    ("mixed5[1]x", "unexpected 'x' after the channel list"),
    ("mixed5[1][2]", "unexpected '[2]'"),
    ("mixed5[-1]", "channel '-1' is not a non-negative integer"),
    ("mixed5[+1]", "channel '+1' is not a non-negative integer"),
    ("mixed5[1.5]", "channel '1.5' is not a non-negative integer"),
    ("mixed5[a]", "channel 'a' is not a non-negative integer"),
    ("mixed5[1,,2]", "channel '' is not a non-negative integer"),
    ("mixed5[²]", "channel '²' is not a non-negative integer"),
    ("mixed5[1:3]", "channel '1:3' is not a non-negative integer"),
    ("mixed5[4,2,4]", "channel 4 named more than once"),
])
def test_malformed_targets_say_what_is_wrong(key, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        split_target(key)
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_layers(f"mixed4:1,{key}:0.5")


@pytest.mark.parametrize("text, message", [
    ("", "no layer named"),
    (" , ", "no layer named"),
    ("mixed5:x", "the weight after ':' must be a number"),
    ("mixed5[1]:0.5:2", "the weight after ':' must be a number"),
    ("mixed5[1,2]:", None),  # an empty weight weighs 1, as for a plain name
])
def test_weights_and_empty_specs(text, message):
    if message is None:
        assert parse_layers(text) == {"mixed5[1,2]": 1.0}
        return
    with pytest.raises(ValueError, match=message):
        parse_layers(text)


names = st.sampled_from(["mixed0", "mixed5", "mixed10", "block4_conv3", "conv2d_7"])
channel_sets = st.none() | st.sets(st.integers(0, 2047), min_size=1, max_size=6).map(tuple)
weights = st.sampled_from([1.0, 0.5, 2.0, 0.25, -1.0, 1e-3])


@given(st.dictionaries(st.builds(target_key, names, channel_sets), weights, min_size=1, max_size=5))
def test_format_and_parse_round_trip(layers):
    assert parse_layers(format_layers(layers)) == layers
