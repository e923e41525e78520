"""Slide reading (mpp, magnification, overrides, broken files) and tiling on the real slides."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from kemm.errors import InputDataError
from kemm.wsi.slide import (
    MppOverrides,
    find_slides,
    magnification_from_mpp,
    open_slide,
    slide_id_of,
)
from kemm.wsi.tiling import TilingParams, plan_patches, read_patch, save_review_image
from kemm.wsi.tissue import tissue_fraction

pytestmark = pytest.mark.data

CMU = "cmu-1-small-region.svs"
TCGA = "tcga-cr-7395-01a-01-ts1.svs"


@pytest.fixture(scope="module")
def slides_dir(data_root):
    return data_root / "slides"


@pytest.fixture(scope="module")
def cmu_grid(slides_dir):
    with open_slide(slides_dir / CMU) as slide:
        grid = plan_patches(slide, TilingParams())
        patches = [read_patch(slide, grid, i) for i in range(len(grid))]
    return grid, patches


@pytest.mark.parametrize(
    ("mpp", "magnification"),
    [(0.25, 40.0), (0.2527, 40.0), (0.499, 20.0), (1.0, 10.0), (0.7, 14.286)],
)
def test_magnification_from_mpp(mpp, magnification):
    assert magnification_from_mpp(mpp) == pytest.approx(magnification, abs=1e-3)


def test_slide_id_strips_known_extensions(tmp_path):
    assert slide_id_of("/x/TCGA-AA-0001-01Z-00-DX1.ABC.svs") == "TCGA-AA-0001-01Z-00-DX1.ABC"
    assert slide_id_of("a/b.ome.tiff") == "b.ome"


def test_mpp_and_magnification_from_metadata(slides_dir):
    with open_slide(slides_dir / CMU) as slide:
        assert slide.mpp == pytest.approx(0.499)
        assert slide.mpp_source == "metadata"
        assert slide.magnification == 20.0
        assert slide.objective_power == 20.0
        assert slide.dimensions == (2220, 2967)


def test_slide_without_mpp_fails_clearly_unless_overridden(slides_dir, tmp_path):
    with pytest.raises(InputDataError) as caught:
        open_slide(slides_dir / TCGA)
    message = str(caught.value)
    assert TCGA in message and "microns-per-pixel" in message and "--mpp-override" in message

    csv_table = tmp_path / "mpp.csv"
    csv_table.write_text("slide,mpp\ntcga-cr-7395-01a-01-ts1,0.5\n")
    yaml_table = tmp_path / "mpp.yaml"
    yaml_table.write_text(f"{TCGA}: 0.25\n")
    for override, expected in [
        (MppOverrides.load(csv_table), 0.5),
        (MppOverrides.load(yaml_table), 0.25),
        (1.0, 1.0),
    ]:
        with open_slide(slides_dir / TCGA, mpp_override=override) as slide:
            assert slide.mpp == expected
            assert slide.mpp_source == "override"
    other = MppOverrides({"some-other-slide": 0.5})
    with pytest.raises(InputDataError, match="microns-per-pixel"):
        open_slide(slides_dir / TCGA, mpp_override=other)


def test_bad_override_tables_are_refused(tmp_path):
    bad_columns = tmp_path / "bad.csv"
    bad_columns.write_text("name,resolution\na,0.5\n")
    with pytest.raises(InputDataError, match="columns 'slide' and 'mpp'"):
        MppOverrides.load(bad_columns)
    bad_value = tmp_path / "value.csv"
    bad_value.write_text("slide,mpp\na,half\n")
    with pytest.raises(InputDataError, match="line 2"):
        MppOverrides.load(bad_value)
    with pytest.raises(InputDataError, match="plausible"):
        MppOverrides({"a": 300.0})


def test_default_tiff_resolution_is_not_trusted(slides_dir):
    with pytest.raises(InputDataError, match="implausible"):
        open_slide(slides_dir / "boxes.tiff")
    with open_slide(slides_dir / "boxes.tiff", mpp_override=0.5) as slide:
        assert slide.level_count == 4


def test_truncated_slide_is_reported_with_path_and_reason(slides_dir, tmp_path):
    data = (slides_dir / CMU).read_bytes()
    truncated = tmp_path / "truncated.svs"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError) as caught:
        open_slide(truncated)
    assert str(truncated) in str(caught.value)
    assert "truncated" in str(caught.value)


def test_corrupt_tiles_are_reported(slides_dir, tmp_path):
    data = bytearray((slides_dir / CMU).read_bytes())
    data[len(data) // 4 : len(data) // 2] = bytes(len(data) // 2 - len(data) // 4)
    corrupt = tmp_path / "corrupt.svs"
    corrupt.write_bytes(bytes(data))
    with open_slide(corrupt) as slide, pytest.raises(InputDataError, match="corrupt"):
        slide.thumbnail(8.0)


def test_find_slides_in_folder_and_list(slides_dir, tmp_path):
    found = find_slides(slides_dir)
    assert {p.name for p in found} >= {CMU, TCGA, "boxes.tiff"}
    listing = tmp_path / "slides.txt"
    listing.write_text(f"slide\n{slides_dir / CMU}\n# comment\n\n{slides_dir / TCGA}\n")
    assert [p.name for p in find_slides(listing)] == [CMU, TCGA]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputDataError, match="no slide in this folder.*nothing to do"):
        find_slides(empty)
    blank = tmp_path / "blank.txt"
    blank.write_text("slide\n# none yet\n")
    with pytest.raises(InputDataError, match="names no slide"):
        find_slides(blank)


def test_patches_lie_on_tissue(cmu_grid):
    grid, patches = cmu_grid
    assert grid.patch_size_level0 == 256 and grid.read_level == 0
    assert 10 <= len(grid) <= 60
    assert grid.coords.dtype == np.int64 and grid.coords.shape == (len(grid), 2)
    assert (grid.coords >= 0).all()
    assert (grid.coords[:, 0] + 256 <= 2220).all() and (grid.coords[:, 1] + 256 <= 2967).all()
    assert (grid.coords % 256 == 0).all()
    assert (grid.tissue_fractions >= 0.5).all()
    # Independent check on the pixels actually read: each patch shows stained tissue.
    for (x, y), patch in zip(grid.coords, patches, strict=True):
        assert patch.shape == (256, 256, 3)
        assert tissue_fraction(patch, pixel_size_um=0.5) > 0.25, (x, y)
    # The glass in the top-left corner of CMU-1 holds no patch.
    assert not ((grid.coords[:, 0] < 512) & (grid.coords[:, 1] < 512)).any()


def test_min_tissue_controls_patch_count(slides_dir, cmu_grid):
    grid, _ = cmu_grid
    with open_slide(slides_dir / CMU) as slide:
        loose = plan_patches(slide, TilingParams(min_tissue=0.05))
        strict = plan_patches(slide, TilingParams(min_tissue=0.95))
    assert len(strict) < len(grid) < len(loose)


def test_magnification_sets_patch_footprint_and_read_level(slides_dir):
    with open_slide(slides_dir / TCGA, mpp_override=0.5) as slide:
        grid = plan_patches(slide, TilingParams(magnification=5.0, patch_size=256))
        assert grid.patch_size_level0 == 1024
        assert grid.read_level == 1 and grid.read_size == 512
        assert len(grid) >= 4
        patch = read_patch(slide, grid, 0)
        assert patch.shape == (256, 256, 3)
        assert tissue_fraction(patch, pixel_size_um=2.0) > 0.25


def test_upsampling_is_refused_with_advice(slides_dir):
    with open_slide(slides_dir / CMU) as slide, pytest.raises(InputDataError) as caught:
        plan_patches(slide, TilingParams(magnification=40.0))
    assert "--magnification 20" in str(caught.value)


def test_review_image_shows_contour_and_grid(cmu_grid, tmp_path):
    grid, _ = cmu_grid
    path = save_review_image(grid, tmp_path / "review.png")
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert image.shape[:2] == grid.thumbnail.shape[:2]
    green = (image[..., 1] == 200) & (image[..., 0] == 0)
    blue = (image[..., 2] == 220) & (image[..., 0] == 30)
    assert green.sum() > 50 and blue.sum() > 50


def test_copy_of_slide_keeps_its_identity(slides_dir, tmp_path):
    copy = tmp_path / "renamed-case.svs"
    shutil.copy(slides_dir / CMU, copy)
    with open_slide(copy) as slide:
        assert slide.slide_id == "renamed-case"
        assert "renamed-case" in repr(slide)
