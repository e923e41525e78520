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

from kemm.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    "kemm.wsi",
    {
        "slide": ("Slide", "MppOverrides", "open_slide", "find_slides"),
        "tissue": ("TissueParams", "segment_tissue", "tissue_fraction", "is_tissue"),
        "tiling": ("TilingParams", "PatchGrid", "plan_patches"),
        "encoders": ("PatchEncoder", "create_encoder=create", "list_encoders"),
        "extract": ("ExtractionConfig", "SlideProcessor", "RunSummary", "extract_features"),
        "distributed": ("extract_features_ray",),
        "features": ("FeatureBag", "read_bag", "write_bag", "check_compatible"),
        "heatmap": ("render_heatmap",),
    },
)
