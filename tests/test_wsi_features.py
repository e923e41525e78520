"""The feature-bag store (kemm, CLAM and TRIDENT files), compatibility checks and heatmaps."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from kemm import __version__
from kemm.errors import InputDataError
from kemm.wsi.features import FeatureBag, check_compatible, read_bag, write_bag
from kemm.wsi.heatmap import load_patch_scores, render_heatmap


@pytest.fixture
def bag_arrays():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(7, 16)).astype(np.float32)
    coords = np.array([[i * 256, 512] for i in range(7)], dtype=np.int64)
    return features, coords


def test_write_and_read_kemm_bag(tmp_path, bag_arrays):
    features, coords = bag_arrays
    attrs = {"encoder": "tiny_random", "mpp": 0.5, "magnification": 20.0, "patch_size": 256,
             "patch_size_level0": 512, "slide_id": "s1", "mean": (0.5, 0.5, 0.5)}  # fmt: skip
    path = write_bag(tmp_path / "s1.h5", features, coords, attrs)
    bag = read_bag(path)
    np.testing.assert_array_equal(bag.features, features)
    np.testing.assert_array_equal(bag.coords, coords)
    assert bag.encoder == "tiny_random" and bag.dim == 16 and len(bag) == 7
    assert bag.attrs["feature_dim"] == 16 and bag.attrs["kemm_version"] == __version__
    assert bag.attrs["mean"] == [0.5, 0.5, 0.5]
    assert not list(tmp_path.glob(".*tmp")), "temporary file left behind"
    # The layout CLAM and TRIDENT loaders read.
    with h5py.File(path, "r") as handle:
        assert handle["features"].shape == (7, 16) and handle["coords"].dtype == np.int64
        assert handle["coords"].attrs["patch_size_level0"] == 512
        assert handle["coords"].attrs["target_magnification"] == 20.0
        assert handle["coords"].attrs["name"] == "s1"


def test_fp16_storage_halves_the_features(tmp_path, bag_arrays):
    features, coords = bag_arrays
    path = write_bag(tmp_path / "half.h5", features, coords, {"encoder": "x"}, dtype=np.float16)
    with h5py.File(path, "r") as handle:
        assert handle["features"].dtype == np.float16
    np.testing.assert_allclose(read_bag(path).features, features, atol=1e-2)


def test_write_refuses_misshapen_input(tmp_path, bag_arrays):
    features, coords = bag_arrays
    with pytest.raises(ValueError, match="N × 2"):
        write_bag(tmp_path / "x.h5", features, coords[:3], {})
    with pytest.raises(ValueError, match="N × D"):
        write_bag(tmp_path / "x.h5", features[0], coords, {})


def test_reads_clam_h5_and_pt(tmp_path, bag_arrays):
    features, coords = bag_arrays
    clam_h5 = tmp_path / "clam.h5"
    with h5py.File(clam_h5, "w") as handle:
        handle.create_dataset("features", data=features)
        coords_set = handle.create_dataset("coords", data=coords)
        coords_set.attrs["patch_level"] = 0
        coords_set.attrs["patch_size"] = 256
    bag = read_bag(clam_h5)
    assert bag.encoder is None and bag.attrs["patch_size"] == 256
    np.testing.assert_array_equal(bag.coords, coords)

    clam_pt = tmp_path / "clam.pt"
    torch.save(torch.from_numpy(features), clam_pt)
    bag = read_bag(clam_pt)
    assert bag.coords is None and bag.features.shape == (7, 16)

    dict_pt = tmp_path / "dict.pt"
    torch.save({"feats": torch.from_numpy(features).half(), "coords": torch.from_numpy(coords),
                "model_name": "uni_v1", "patch_size_level0": 512}, dict_pt)  # fmt: skip
    bag = read_bag(dict_pt)
    assert bag.encoder == "uni_v1" and bag.attrs["patch_size_level0"] == 512
    assert bag.features.dtype == np.float32


def test_reads_trident_h5(tmp_path, bag_arrays):
    features, coords = bag_arrays
    path = tmp_path / "trident.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("features", data=features[None])  # some writers keep a batch axis
        coords_set = handle.create_dataset("coords", data=coords)
        for key, value in {"patch_size": 256, "patch_size_level0": 512, "target_magnification": 20,
                           "level0_magnification": 40, "name": "slide"}.items():  # fmt: skip
            coords_set.attrs[key] = value
        handle["features"].attrs["encoder"] = "conch_v15"
    bag = read_bag(path)
    assert bag.features.shape == (7, 16)
    assert bag.encoder == "conch_v15" and bag.attrs["magnification"] == 20


def test_unreadable_or_wrong_files_name_the_file(tmp_path, bag_arrays):
    features, _ = bag_arrays
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(InputDataError, match="broken.h5"):
        read_bag(broken)
    no_features = tmp_path / "nofeat.h5"
    with h5py.File(no_features, "w") as handle:
        handle.create_dataset("coords", data=np.zeros((2, 2)))
    with pytest.raises(InputDataError, match="no 'features'"):
        read_bag(no_features)
    mismatch = tmp_path / "mismatch.h5"
    with h5py.File(mismatch, "w") as handle:
        handle.create_dataset("features", data=features)
        handle.create_dataset("coords", data=np.zeros((3, 2)))
    with pytest.raises(InputDataError, match="does not match 7"):
        read_bag(mismatch)
    numpy_file = tmp_path / "x.npy"
    np.save(numpy_file, features)
    with pytest.raises(InputDataError, match="unknown feature file type"):
        read_bag(numpy_file)
    with pytest.raises(InputDataError, match="not found"):
        read_bag(tmp_path / "absent.h5")


def test_check_compatible_refuses_other_encoder_or_dimension(tmp_path, bag_arrays):
    features, coords = bag_arrays
    path = write_bag(tmp_path / "bag.h5", features, coords, {"encoder": "tiny_random"})
    bag = read_bag(path)
    check_compatible(bag, "tiny_random", 16)
    with pytest.raises(InputDataError) as caught:
        check_compatible(bag, "resnet50_trunc", 16)
    assert "bag.h5" in str(caught.value) and "'tiny_random'" in str(caught.value)
    assert "'resnet50_trunc'" in str(caught.value)
    with pytest.raises(InputDataError, match="dimension 16 but this run expects 1024"):
        check_compatible(bag.attrs, None, 1024, file=str(path))
    # A CLAM bag without an encoder record is checked on its dimension only.
    clam = FeatureBag(features=features, attrs={}, path="clam.pt")
    check_compatible(clam, "resnet50_trunc", 16)
    with pytest.raises(InputDataError, match="clam.pt"):
        check_compatible(clam, "resnet50_trunc", 1024)


# -- heatmaps --------------------------------------------------------------------------------------
def test_heatmap_paints_scored_patches_only(tmp_path):
    thumbnail = np.full((100, 200, 3), 255, dtype=np.uint8)
    coords = np.array([[0, 0], [1000, 0], [0, 1000]])
    scores = np.array([0.0, 1.0, 0.5])
    out = render_heatmap(thumbnail, coords, scores, 1000, tmp_path / "heat.png",
                         level0_dimensions=(4000, 2000), colorbar=False, colormap="jet",
                         alpha=1.0)  # fmt: skip
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert image.shape == (100, 200, 3)
    low, high = image[10, 10], image[10, 60]
    assert low[2] > low[0], "lowest score should be blue in jet"
    assert high[0] > high[2], "highest score should be red in jet"
    assert (image[80, 150] == 255).all(), "unscored area stays untouched"
    with_bar = render_heatmap(thumbnail, coords, scores, 1000, tmp_path / "bar.png",
                              level0_dimensions=(4000, 2000))  # fmt: skip
    assert Image.open(with_bar).width > 200


def test_heatmap_refuses_bad_input(tmp_path):
    thumbnail = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(InputDataError, match="3 coordinates but 2 scores"):
        render_heatmap(thumbnail, np.zeros((3, 2)), np.zeros(2), 10, tmp_path / "x.png",
                       level0_dimensions=(10, 10))  # fmt: skip
    with pytest.raises(InputDataError, match="level0_dimensions"):
        render_heatmap(thumbnail, np.zeros((1, 2)), np.zeros(1), 10, tmp_path / "x.png")
    off_slide = np.array([[5000.0, 0.0], [0.0, 9000.0]])  # features of a bigger slide
    with pytest.raises(InputDataError, match="none of the 2 patch coordinates lies on the slide"):
        render_heatmap(thumbnail, off_slide, np.ones(2), 10, tmp_path / "blank.png",
                       level0_dimensions=(100, 100))  # fmt: skip
    assert not (tmp_path / "blank.png").exists()


def test_explanation_json_layouts(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"coords": [[0, 0], [256, 0]], "scores": [0.1, 0.9],
                                "patch_size_level0": 256}))  # fmt: skip
    coords, scores, size = load_patch_scores(flat)
    assert coords.shape == (2, 2) and scores.tolist() == [0.1, 0.9] and size == 256
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"slides": {
        "a": {"patches": [{"x": 0, "y": 0, "score": 2.0}]},
        "b": {"coords": [[5, 5]], "scores": [1.0]}}}))  # fmt: skip
    coords, scores, size = load_patch_scores(nested, slide_id="a")
    assert coords.tolist() == [[0, 0]] and scores.tolist() == [2.0] and size is None
    with pytest.raises(InputDataError, match="2 slides"):
        load_patch_scores(nested)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"values": [1]}))
    with pytest.raises(InputDataError, match="'coords' and 'scores'"):
        load_patch_scores(bad)


@pytest.mark.data
def test_heatmap_over_a_real_slide(data_root, tmp_path):
    slide = data_root / "slides" / "cmu-1-small-region.svs"
    coords = np.array([[512, 1024], [768, 1024], [768, 1280]])
    out = render_heatmap(slide, coords, np.array([1.0, 2.0, 3.0]), 256, tmp_path / "cmu.png",
                         max_side=512)  # fmt: skip
    image = Image.open(out)
    assert max(image.size) <= 512 + 60
