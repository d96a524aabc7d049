"""Dreaming with other networks (issue 13 item 4): a built-in other than InceptionV3 in the
engine, the daemon's own model files from its models folder with a least-recently-used limit,
`info`'s models, and the CLI's --model."""

import numpy as np
import pytest
from deepdream_client.client import DaemonError, DreamClient
from deepdream_client.image_files import read_metadata
from deepdream_common.vocabulary import BUILT_IN_MODELS, INVALID_PARAMS, UNKNOWN_LAYER
from PIL import Image

from bench.trained_network import cached_hed_vgg16
from bench.daemon_process import start_daemon
from deepdream_cli import cli
from images import photo

TINY = {"octaves": 1, "steps": 2, "jitter": 0}


@pytest.fixture(scope="module")
def daemon():
    """conftest's daemon, given the time a loaded 2-core machine takes to start it."""
    with start_daemon(ready_timeout=300) as process:
        yield process


@pytest.fixture(scope="module")
def vgg16():
    from dream_engine import DreamEngine

    return DreamEngine(model="vgg16", weights="random", precision="float32")


def test_vgg16_dreams_with_its_own_default_layer_and_preprocessing(vgg16):
    from dream_engine import DreamParams

    image = photo(80, 100)
    dreamed = vgg16.dream(image, DreamParams(model="vgg16", octaves=2, steps=2))
    assert dreamed.shape == image.shape and dreamed.dtype == image.dtype
    assert np.abs(dreamed.astype(int) - image).mean() > 1  # it dreamed
    assert vgg16.network.preprocess == "caffe" and vgg16.default_layers == {"block4_conv3": 1.0}
    assert vgg16.layer_channels["block1_conv1"] == 64 and vgg16.layer_channels["block5_conv3"] == 512
    # A channel target, as for InceptionV3, and a shallow layer: stride 1..8 tiles align with the network's stride.
    shallow = vgg16.dream(image, DreamParams(model="vgg16", layers={"block2_conv2[3,7]": 1.0}, **TINY))
    assert shallow.shape == image.shape


def test_vgg16_refuses_inception_layers_and_another_models_params(vgg16):
    from dream_engine import DreamParams, InvalidParams, UnknownLayer

    with pytest.raises(UnknownLayer, match="unknown layer 'mixed3'; vgg16 has block1_conv1"):
        vgg16.dream(photo(80, 100), DreamParams(model="vgg16", layers={"mixed3": 1.0}, **TINY))
    with pytest.raises(InvalidParams, match="model: this engine dreams with vgg16, not inception_v3"):
        vgg16.dream(photo(80, 100), DreamParams(**TINY))


def test_an_unknown_model_name_lists_the_known_ones(tmp_path):
    from dream_engine import DreamEngine, InvalidParams

    with pytest.raises(InvalidParams, match="unknown model 'alexnet'; this daemon has inception_v3, vgg16"):
        DreamEngine(model="alexnet", weights="random", models_dir=tmp_path)
    with pytest.raises(InvalidParams, match="model: must be a model's name"):
        DreamEngine(model=["vgg16"], weights="random")


def models_by_name(info):
    return {model["name"]: model for model in info["models"]}


def test_a_daemon_dreams_with_a_model_file_and_a_built_in_in_turn_keeping_one_loaded():
    hed = cached_hed_vgg16()  # its folder holds hed_vgg16.keras and its sidecar hed_vgg16.json
    image = photo(90, 120)
    with start_daemon("--models-dir", str(hed.parent), "--max-models", "1", ready_timeout=300) as daemon, \
            DreamClient(daemon.endpoint) as client:
        models = models_by_name(client.info())
        assert list(models)[:len(BUILT_IN_MODELS)] == list(BUILT_IN_MODELS) and "hed_vgg16" in models
        assert models["inception_v3"]["loaded"] and models["inception_v3"]["memory_mib"] > 80
        assert models["inception_v3"]["layers"]["mixed5"] == 768
        assert not models["hed_vgg16"]["loaded"] and models["hed_vgg16"]["memory_mib"] is None

        dreamed, result = client.dream_array(image, {"model": "hed_vgg16", **TINY}, return_result=True)
        assert dreamed.shape == image.shape and np.abs(dreamed.astype(int) - image).mean() > 0.1
        assert result.stats["model"] == "hed_vgg16" and list(result.stats["layers"]) == ["block4_conv2"]
        models = models_by_name(client.info())
        assert models["hed_vgg16"]["loaded"] and not models["inception_v3"]["loaded"]  # max_models 1: evicted
        assert models["hed_vgg16"]["layers"]["block4_conv3"] == 512 and models["hed_vgg16"]["preprocess"] == "none"
        assert models["hed_vgg16"]["memory_mib"] > 20
        assert models["inception_v3"]["memory_mib"] > 80  # still described, no longer loaded

        # Now that hed_vgg16 is known, a layer it lacks is refused at once.
        with pytest.raises(DaemonError) as refused:
            client.dream_array(image, {"model": "hed_vgg16", "layers": {"mixed5": 1.0}, **TINY})
        assert refused.value.code == UNKNOWN_LAYER and "hed_vgg16 has block1_conv1" in refused.value.message

        _, result = client.dream_array(image, TINY, return_result=True)  # the default model, loaded again
        assert result.stats["model"] == "inception_v3" and result.stats["layers"] == {"mixed2": 1.0, "mixed5": 1.0}
        models = models_by_name(client.info())
        assert models["inception_v3"]["loaded"] and not models["hed_vgg16"]["loaded"]

        # Never a path: a file is known by its name in the models folder.
        for wrong, said in (("alexnet", 'unknown model "alexnet"; this daemon has inception_v3, vgg16'),
                            (str(hed), 'unknown model "'), (5, "model: must be a model's name")):
            with pytest.raises(DaemonError) as refused:
                client.dream_array(image, {"model": wrong, **TINY})
            assert refused.value.code == INVALID_PARAMS and said in refused.value.message
        assert client.ping()["state"] == "ready"
    log = daemon.log_text()
    assert "model inception_v3 unloaded (max_models is 1)" in log and "model hed_vgg16 loaded" in log


def test_an_unknown_model_on_the_daemon_lists_what_it_has(daemon):
    with DreamClient(daemon.endpoint) as client, pytest.raises(DaemonError) as refused:
        client.dream_array(photo(80, 80), {"model": "alexnet", **TINY})
    assert refused.value.code == INVALID_PARAMS
    assert refused.value.message.startswith('bad params: model: unknown model "alexnet"; this daemon has '
                                            "inception_v3, vgg16, vgg19, resnet50v2, inception_resnet_v2, xception")


def test_in_process_cli_dreams_with_a_model_file(tmp_path, capsys):
    source, target = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(photo(80, 96)).save(source)
    args = ["dream", str(source), str(target), "--in-process", "-q", "--octaves", "1", "--steps", "2"]
    assert cli.main([*args, "--model", str(cached_hed_vgg16())]) == 0
    with Image.open(target) as written:
        assert written.size == (96, 80)
    metadata = read_metadata(target)
    assert metadata["model"] == "hed_vgg16" and metadata["params"]["layers"] == {"block4_conv2": 1.0}


def test_a_model_file_with_a_daemon_is_refused_with_where_to_put_it(tmp_path, daemon, capsys):
    source = tmp_path / "in.png"
    Image.fromarray(photo(80, 96)).save(source)
    model = cached_hed_vgg16()
    code = cli.main(["dream", str(source), str(tmp_path / "out.png"), "--endpoint", daemon.endpoint,
                     "--model", str(model)])
    assert code == cli.EXIT_ERROR
    message = capsys.readouterr().err
    assert "loads model files from its own models folder" in message and "--model hed_vgg16" in message


def test_cli_info_lists_the_models(daemon, capsys):
    assert cli.main(["info", "--endpoint", daemon.endpoint]) == 0
    out = capsys.readouterr().out
    assert "models (up to 2 kept loaded; --model NAME):" in out
    assert "  inception_v3: loaded, " in out and "mixed5(768)" in out
    assert "  vgg16: not loaded, size unknown until loaded, input caffe, default layers block4_conv3" in out
