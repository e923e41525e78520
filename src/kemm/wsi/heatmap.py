"""Per-patch scores (attention, risk contribution from ``kemm explain``) painted over a slide
thumbnail as a PNG."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from kemm.errors import InputDataError

log = logging.getLogger(__name__)


def _thumbnail_from_slide(
    slide_path: str | Path, max_side: int
) -> tuple[np.ndarray, tuple[int, int]]:
    import openslide

    from kemm.wsi.slide import rgba_to_rgb

    try:
        handle = openslide.OpenSlide(str(slide_path))
    except (openslide.OpenSlideError, OSError) as error:
        raise InputDataError(
            f"OpenSlide cannot open the slide ({error})", file=str(slide_path)
        ) from error
    try:
        level0 = tuple(int(v) for v in handle.dimensions)
        thumbnail = handle.get_thumbnail((max_side, max_side))
    finally:
        handle.close()
    return rgba_to_rgb(thumbnail), level0  # type: ignore[return-value]


def render_heatmap(
    slide_or_thumbnail: str | Path | np.ndarray | Image.Image,
    coords: np.ndarray,
    scores: np.ndarray,
    patch_size_level0: int,
    out_png: str | Path,
    *,
    level0_dimensions: tuple[int, int] | None = None,
    colormap: str = "jet",
    alpha: float = 0.45,
    normalize: str = "rank",
    max_side: int = 2048,
    colorbar: bool = True,
) -> Path:
    """Render scores of patches at ``coords`` (level-0 top-left corners) over the slide.

    ``slide_or_thumbnail``: a slide path (its thumbnail is read with OpenSlide), or a thumbnail
    image of the whole slide, then with ``level0_dimensions`` (width, height) to place patches.
    ``normalize``: ``"rank"`` (percentiles, the CLAM convention, robust to outliers),
    ``"minmax"`` or ``"none"`` (scores already in [0, 1]).
    """
    from matplotlib import colormaps

    coords = np.asarray(coords, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise InputDataError(f"coords must be N × 2, got shape {coords.shape}")
    if coords.shape[0] != scores.shape[0]:
        raise InputDataError(f"{coords.shape[0]} coordinates but {scores.shape[0]} scores")
    if not np.all(np.isfinite(scores)):
        raise InputDataError("scores contain NaN or infinite values")

    if isinstance(slide_or_thumbnail, (str, Path)):
        thumbnail, level0 = _thumbnail_from_slide(slide_or_thumbnail, max_side)
    else:
        if level0_dimensions is None:
            raise InputDataError("a thumbnail needs level0_dimensions=(width, height) of level 0")
        image = slide_or_thumbnail
        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        thumbnail, level0 = np.asarray(image)[..., :3], tuple(level0_dimensions)

    outside = (coords[:, 0] >= level0[0]) | (coords[:, 1] >= level0[1]) | (coords < -patch_size_level0).any(axis=1)  # fmt: skip
    if len(coords) and outside.all():
        raise InputDataError(
            f"none of the {len(coords)} patch coordinates lies on the slide (level 0 is "
            f"{level0[0]} × {level0[1]} px; first patch at {tuple(coords[0].astype(int))}): "
            "are the features from another slide?"
        )
    if outside.any():
        log.warning("%d of %d patch coordinates lie outside the slide and are not drawn",
                    int(outside.sum()), len(coords))  # fmt: skip
    values = _normalise(scores, normalize)
    height, width = thumbnail.shape[:2]
    scale_x, scale_y = width / level0[0], height / level0[1]
    heat = np.zeros((height, width), dtype=np.float64)
    weight = np.zeros((height, width), dtype=np.float64)
    for (x, y), value in zip(coords, values, strict=True):
        left, top = int(np.floor(x * scale_x)), int(np.floor(y * scale_y))
        right = max(left + 1, int(np.ceil((x + patch_size_level0) * scale_x)))
        bottom = max(top + 1, int(np.ceil((y + patch_size_level0) * scale_y)))
        heat[top:bottom, left:right] += value
        weight[top:bottom, left:right] += 1.0
    covered = weight > 0
    heat[covered] /= weight[covered]

    colours = (colormaps[colormap](heat)[..., :3] * 255.0).astype(np.float64)
    blended = thumbnail.astype(np.float64)
    blended[covered] = (1 - alpha) * blended[covered] + alpha * colours[covered]
    image = Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))
    if colorbar:
        image = _with_colorbar(image, colormap, normalize)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_png)
    return out_png


def _normalise(scores: np.ndarray, how: str) -> np.ndarray:
    if scores.size == 0:
        return scores
    if how == "rank":
        order = scores.argsort(kind="stable")
        ranks = np.empty_like(scores)
        ranks[order] = np.arange(scores.size)
        return ranks / max(scores.size - 1, 1)
    if how == "minmax":
        span = scores.max() - scores.min()
        return (scores - scores.min()) / span if span > 0 else np.full_like(scores, 0.5)
    if how == "none":
        return np.clip(scores, 0.0, 1.0)
    raise ValueError(f"normalize must be 'rank', 'minmax' or 'none', got {how!r}")


def _with_colorbar(image: Image.Image, colormap: str, normalize: str) -> Image.Image:
    from matplotlib import colormaps

    bar_width, margin = 16, 40
    canvas = Image.new("RGB", (image.width + bar_width + margin, image.height), "white")
    canvas.paste(image, (0, 0))
    ramp = np.linspace(1.0, 0.0, max(image.height - 20, 2))[:, None].repeat(bar_width, axis=1)
    bar = Image.fromarray((colormaps[colormap](ramp)[..., :3] * 255).astype(np.uint8))
    canvas.paste(bar, (image.width + 4, 10))
    draw = ImageDraw.Draw(canvas)
    high, low = ("high", "low") if normalize != "none" else ("1", "0")
    draw.text((image.width + bar_width + 6, 6), high, fill="black")
    draw.text((image.width + bar_width + 6, image.height - 18), low, fill="black")
    return canvas


def load_patch_scores(
    path: str | Path, slide_id: str | None = None
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Coordinates, scores and (if recorded) the level-0 patch size from an explanation JSON.

    Accepted layouts: ``{"coords": [[x, y], ...], "scores": [...], "patch_size_level0": 256}``;
    ``{"patches": [{"x": .., "y": .., "score": ..}, ...]}``; or either nested under
    ``{"slides": {slide_id: {...}}}`` (then ``slide_id`` picks one, or the only one).
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputDataError(
            f"cannot read the explanation JSON ({error})", file=str(path)
        ) from error
    if isinstance(content, Mapping) and isinstance(content.get("slides"), Mapping):
        slides = content["slides"]
        if slide_id is None:
            if len(slides) != 1:
                raise InputDataError(
                    f"the file holds {len(slides)} slides ({', '.join(list(slides)[:5])}); name one",
                    file=str(path),
                )
            slide_id = next(iter(slides))
        if slide_id not in slides:
            raise InputDataError(f"no slide {slide_id!r} in the file", file=str(path))
        content = slides[slide_id]
    if not isinstance(content, Mapping):
        raise InputDataError("expected a JSON object with coords and scores", file=str(path))
    patch_size = content.get("patch_size_level0")
    if "coords" in content and "scores" in content:
        coords, scores = np.asarray(content["coords"]), np.asarray(content["scores"])
    elif "patches" in content:
        patches = content["patches"]
        coords = np.asarray([[p["x"], p["y"]] for p in patches])
        scores = np.asarray([p["score"] for p in patches])
    else:
        raise InputDataError(
            f"expected keys 'coords' and 'scores' (or 'patches'); found {sorted(content)}",
            file=str(path),
        )
    coords = coords.reshape(-1, 2) if coords.size else np.zeros((0, 2))
    return coords, scores.astype(np.float64), int(patch_size) if patch_size is not None else None
