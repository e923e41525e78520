"""The patch-encoder registry, weight loading and batched encoding."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from safetensors.torch import save_file

from kemm.device import resolve_device
from kemm.errors import ConfigError, InputDataError
from kemm.wsi import encoders
from kemm.wsi.encoders import (
    PatchEncoder,
    ResNet50Trunc,
    create,
    encode_batch,
    list_encoders,
    register,
)


def torchvision_style_state_dict(network: ResNet50Trunc) -> dict[str, torch.Tensor]:
    """What torchvision's resnet50().state_dict() holds: our keys plus layer4 and fc."""
    state = {k: v.clone() for k, v in network.state_dict().items()}
    state["layer4.0.conv1.weight"] = torch.zeros(512, 1024, 1, 1)
    state["fc.weight"] = torch.zeros(1000, 2048)
    state["fc.bias"] = torch.zeros(1000)
    return state


def test_registry_lists_built_ins_and_families():
    names = list_encoders()
    for expected in ("resnet50_trunc", "tiny_random", "phikon", "timm:<model>", "hf:<model>"):
        assert expected in names


def test_unknown_encoder_suggests_the_nearest_name():
    with pytest.raises(ConfigError, match="did you mean 'tiny_random'"):
        create("tiny_randm")


def test_register_decorator_adds_an_encoder_and_refuses_duplicates():
    none = encoders.WeightsSource("none", "none", "nothing")

    @register("test_identity_encoder", "3-d mean colour", weights=none)
    def _factory(weights=None):
        class MeanColour(torch.nn.Module):
            def forward(self, x):
                return x.mean(dim=(2, 3))

        return PatchEncoder(MeanColour(), name="test_identity_encoder", input_size=8, output_dim=3)

    try:
        encoder = create("test_identity_encoder")
        assert encoder.output_dim == 3 and "test_identity_encoder" in list_encoders()
        with pytest.raises(ValueError, match="already registered"):
            register("test_identity_encoder", weights=none)(_factory)
    finally:
        encoders._REGISTRY.pop("test_identity_encoder")


def test_every_encoder_says_where_its_weights_come_from():
    listing = encoders.describe_encoders()
    assert set(listing) == set(encoders.list_encoders())
    for name, line in listing.items():
        assert "weights:" in line and "licence:" in line and "give them as" in line, name
    assert "torchvision" in encoders.weights_source("resnet50_trunc").source
    assert "non-commercial" in encoders.weights_source("phikon").licence
    with pytest.raises(ConfigError) as missing:
        create("resnet50_trunc")
    message = str(missing.value)
    assert "\n" not in message and "--weights" in message and "--encoder tiny_random" in message
    assert "--random-weights" in message and "allow_random" not in message


def test_encoders_declare_their_preprocessing():
    tiny = create("tiny_random")
    assert (tiny.name, tiny.input_size, tiny.output_dim) == ("tiny_random", 64, 32)
    assert tiny.mean == encoders.IMAGENET_MEAN and tiny.std == encoders.IMAGENET_STD
    assert not tiny.training


def test_tiny_encoder_is_deterministic_and_batched():
    patches = torch.randint(0, 256, (5, 256, 256, 3), dtype=torch.uint8)
    first = encode_batch(create("tiny_random"), patches)
    second = encode_batch(create("tiny_random"), patches.permute(0, 3, 1, 2))
    assert first.shape == (5, 32) and first.dtype == torch.float32
    torch.testing.assert_close(first, second)
    single = encode_batch(create("tiny_random"), patches[:1])
    torch.testing.assert_close(single, first[:1], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(first[0], first[1])


def test_preprocess_resizes_and_normalises():
    encoder = create("tiny_random")
    white = torch.full((2, 3, 256, 256), 255, dtype=torch.uint8)
    images = encoder.preprocess(white)
    assert images.shape == (2, 3, 64, 64)
    expected = (1 - torch.tensor(encoders.IMAGENET_MEAN)) / torch.tensor(encoders.IMAGENET_STD)
    torch.testing.assert_close(images[0, :, 10, 10], expected)


def test_resnet50_trunc_needs_weights_unless_random_is_allowed():
    with pytest.raises(ConfigError, match="--weights"):
        create("resnet50_trunc")
    encoder = create("resnet50_trunc", allow_random=True)
    assert encoder.name == "resnet50_trunc-random"
    assert (encoder.input_size, encoder.output_dim) == (224, 1024)
    features = encode_batch(encoder, torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8))
    assert features.shape == (1, 1024)


def test_resnet50_has_torchvision_keys_up_to_layer3():
    keys = set(ResNet50Trunc().state_dict())
    assert "conv1.weight" in keys and "bn1.running_mean" in keys
    assert "layer1.0.downsample.0.weight" in keys and "layer1.0.downsample.1.weight" in keys
    assert "layer3.5.conv3.weight" in keys and "layer3.5.bn3.num_batches_tracked" in keys
    assert not any(k.startswith(("layer4", "fc")) for k in keys)
    blocks = {k.split(".")[0] + "." + k.split(".")[1] for k in keys if k.startswith("layer")}
    assert sum(b.startswith("layer1") for b in blocks) == 3
    assert sum(b.startswith("layer2") for b in blocks) == 4
    assert sum(b.startswith("layer3") for b in blocks) == 6
    parameters = sum(v.numel() for k, v in ResNet50Trunc().named_parameters())
    assert parameters == 8_543_296  # torchvision resnet50 without layer4 and fc


@pytest.mark.parametrize("file_format", ["safetensors", "pth", "wrapped"])
def test_resnet50_loads_torchvision_checkpoints(tmp_path, file_format):
    torch.manual_seed(1)
    source = ResNet50Trunc()
    state = torchvision_style_state_dict(source)
    if file_format == "safetensors":
        path = tmp_path / "resnet50.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif file_format == "pth":
        path = tmp_path / "resnet50.pth"
        torch.save(state, path)
    else:
        path = tmp_path / "resnet50_ddp.pth"
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    encoder = create("resnet50_trunc", weights=path)
    assert encoder.name == "resnet50_trunc" and encoder.weights == str(path)
    loaded = encoder.network.state_dict()
    torch.testing.assert_close(loaded["layer3.5.conv3.weight"], state["layer3.5.conv3.weight"])
    torch.testing.assert_close(loaded["bn1.running_var"], state["bn1.running_var"])


def test_mismatched_weights_are_refused(tmp_path):
    state = torchvision_style_state_dict(ResNet50Trunc())
    del state["layer2.0.conv1.weight"]
    missing = tmp_path / "missing.pth"
    torch.save(state, missing)
    with pytest.raises(InputDataError, match="1 missing"):
        create("resnet50_trunc", weights=missing)
    with pytest.raises(InputDataError, match="not found"):
        create("resnet50_trunc", weights=tmp_path / "nowhere.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputDataError, match="cannot read"):
        create("resnet50_trunc", weights=garbage)


def test_weights_table_from_environment(tmp_path, monkeypatch):
    state = torchvision_style_state_dict(ResNet50Trunc())
    weights = tmp_path / "r50.pth"
    torch.save(state, weights)
    table = tmp_path / "weights.yaml"
    table.write_text(f"resnet50_trunc: {weights}\n")
    monkeypatch.setenv(encoders.WEIGHTS_TABLE_ENV, str(table))
    assert create("resnet50_trunc").weights == str(weights)


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_timm_family_without_timm_says_how_to_install():
    with pytest.raises(ConfigError, match="kemm\\[timm\\]"):
        create("timm:resnet50")


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert resolve_device("auto").type == expected
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():  # asking for a device the machine lacks is a clear error
        with pytest.raises(ConfigError, match="no CUDA device is available"):
            resolve_device("cuda:0")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


class _Pickled:  # an object, not a tensor
    pass


def test_pickled_encoder_weights_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": _Pickled()}, path)
    with pytest.raises(InputDataError, match="pickled Python objects") as caught:
        create("resnet50_trunc", weights=path)
    assert "weights_only=False" not in str(caught.value) and "\n" not in str(caught.value)
