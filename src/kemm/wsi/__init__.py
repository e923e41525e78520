"""kemm.wsi: from whole-slide images to patch-feature bags.

- :mod:`kemm.wsi.slide`: OpenSlide reading, microns per pixel, magnification, mpp overrides;
- :mod:`kemm.wsi.tissue`: tissue segmentation (saturation/Otsu, morphology, pen removal);
- :mod:`kemm.wsi.tiling`: patch grids at a target magnification, review thumbnails;
- :mod:`kemm.wsi.encoders`: the patch-encoder registry (``create``, ``list_encoders``);
- :mod:`kemm.wsi.extract`: resumable batched extraction over a folder (``SlideProcessor``);
- :mod:`kemm.wsi.distributed`: the same over a Ray cluster;
- :mod:`kemm.wsi.features`: the HDF5 feature-bag store (kemm, CLAM, TRIDENT files);
- :mod:`kemm.wsi.heatmap`: per-patch scores over the slide thumbnail.

Names are imported lazily so that ``import kemm.wsi`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Slide": "slide",
    "MppOverrides": "slide",
    "open_slide": "slide",
    "find_slides": "slide",
    "TissueParams": "tissue",
    "segment_tissue": "tissue",
    "tissue_fraction": "tissue",
    "is_tissue": "tissue",
    "TilingParams": "tiling",
    "PatchGrid": "tiling",
    "plan_patches": "tiling",
    "PatchEncoder": "encoders",
    "create_encoder": "encoders",
    "list_encoders": "encoders",
    "ExtractionConfig": "extract",
    "SlideProcessor": "extract",
    "RunSummary": "extract",
    "extract_features": "extract",
    "extract_features_ray": "distributed",
    "FeatureBag": "features",
    "read_bag": "features",
    "write_bag": "features",
    "check_compatible": "features",
    "render_heatmap": "heatmap",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'kemm.wsi' has no attribute {name!r}")
    module = importlib.import_module(f"kemm.wsi.{module_name}")
    return getattr(module, "create" if name == "create_encoder" else name)
