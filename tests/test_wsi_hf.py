"""Hugging Face vision encoders, on a tiny ViT saved to a local folder (no download)."""

from __future__ import annotations

import json

import pytest
import torch

from kemm.wsi.encoders import create, encode_batch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_vit_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny-vit")
    config = transformers.ViTConfig(
        hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
        image_size=32, patch_size=8,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25],
        "size": {"height": 32, "width": 32}, "do_center_crop": False}))  # fmt: skip
    return folder


def test_hf_encoder_from_a_local_folder(tiny_vit_folder):
    encoder = create(f"hf:{tiny_vit_folder}")
    assert encoder.output_dim == 24 and encoder.input_size == 32
    assert encoder.mean == (0.5, 0.5, 0.5) and encoder.std == (0.25, 0.25, 0.25)
    patches = torch.randint(0, 256, (3, 256, 256, 3), dtype=torch.uint8)
    features = encode_batch(encoder, patches)
    assert features.shape == (3, 24) and torch.isfinite(features).all()
    mean_pooled = encode_batch(create(f"hf:{tiny_vit_folder}", pooling="mean"), patches)
    assert not torch.allclose(features, mean_pooled)


def test_phikon_style_encoder_takes_a_local_folder(tiny_vit_folder):
    encoder = create("phikon", weights=tiny_vit_folder)
    assert encoder.name == "phikon" and encoder.output_dim == 24


def test_missing_model_says_how_to_provide_it(tmp_path):
    pytest.importorskip("transformers")
    from kemm.errors import ConfigError

    with pytest.raises(ConfigError, match="--weights"):
        create(f"hf:{tmp_path / 'absent-model'}")
