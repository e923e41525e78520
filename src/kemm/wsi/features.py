"""The feature-bag store: one slide's patch features, their coordinates and provenance.

Written as HDF5 with datasets ``features`` (N × D) and ``coords`` (N × 2, level-0 top-left x, y),
the layout CLAM and TRIDENT use, so their loaders read kemm files. Provenance is stored as
attributes on the file root (kemm's keys: ``encoder``, ``feature_dim``, ``mpp``, ``magnification``,
``patch_size``, ``patch_size_level0``, ``kemm_version``, ...) and mirrored on ``coords`` under the
names TRIDENT reads (``patch_size``, ``patch_size_level0``, ``target_magnification``,
``level0_magnification``, ``name``).

:func:`read_bag` reads kemm and TRIDENT/CLAM ``.h5`` files and CLAM ``.pt`` tensors;
:func:`check_compatible` refuses a bag whose encoder or dimension differs from a run's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kemm.errors import InputDataError
from kemm.io import atomic_path, torch_load

ENCODER_ATTRIBUTE_ALIASES = ("encoder", "encoder_name", "patch_encoder", "model_name", "model")
TRIDENT_COORD_ATTRIBUTES = {
    "patch_size": "patch_size",
    "patch_size_level0": "patch_size_level0",
    "magnification": "target_magnification",
    "level0_magnification": "level0_magnification",
    "slide_id": "name",
}


@dataclass
class FeatureBag:
    """Patch features of one slide."""

    features: np.ndarray
    coords: np.ndarray | None = None
    attrs: dict[str, object] = field(default_factory=dict)
    path: str | None = None

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def encoder(self) -> str | None:
        """The encoder that made the features, when the file records it."""
        return encoder_of(self.attrs)


def encoder_of(attrs: Mapping[str, object]) -> str | None:
    for key in ENCODER_ATTRIBUTE_ALIASES:
        value = attrs.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _to_attribute(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return value


def _from_attribute(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_bag(
    path: str | Path,
    features: np.ndarray,
    coords: np.ndarray | None,
    attrs: Mapping[str, object] | None = None,
    *,
    dtype: str | np.dtype = np.float32,
) -> Path:
    """Write a bag atomically (a temporary file renamed into place) and return its path.

    ``dtype`` is the storage type of ``features`` (``float16`` halves the size).
    """
    import h5py

    from kemm import __version__

    path = Path(path)
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be N × D, got shape {features.shape}")
    if coords is not None:
        coords = np.asarray(coords, dtype=np.int64)
        if coords.shape != (features.shape[0], 2):
            raise ValueError(
                f"coords must be N × 2 with N = {features.shape[0]}, got shape {coords.shape}"
            )
    attributes = {"feature_dim": int(features.shape[1]), "kemm_version": __version__}
    attributes.update(attrs or {})
    attributes["feature_dim"] = int(features.shape[1])
    attributes["num_patches"] = int(features.shape[0])

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        features_set = handle.create_dataset("features", data=features.astype(dtype))
        for key, value in attributes.items():
            handle.attrs[key] = _to_attribute(value)
        if "encoder" in attributes:
            features_set.attrs["encoder"] = _to_attribute(attributes["encoder"])
        if coords is not None:
            coords_set = handle.create_dataset("coords", data=coords)
            for ours, theirs in TRIDENT_COORD_ATTRIBUTES.items():
                if ours in attributes:
                    coords_set.attrs[theirs] = _to_attribute(attributes[ours])
            if "read_level" in attributes:
                coords_set.attrs["patch_level"] = _to_attribute(attributes["read_level"])
    return path


def read_bag(path: str | Path, *, with_coords: bool = True) -> FeatureBag:
    """Read a kemm, CLAM or TRIDENT feature file (``.h5``/``.hdf5``) or a CLAM ``.pt`` tensor."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError("feature file not found", file=str(path))
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        bag = _read_torch_bag(path)
    elif suffix in (".h5", ".hdf5"):
        bag = _read_h5_bag(path, with_coords)
    else:
        raise InputDataError(
            f"unknown feature file type {suffix!r}; expected .h5 (kemm/CLAM/TRIDENT) or .pt (CLAM)",
            file=str(path),
        )
    bag.path = str(path)
    _validate(bag, path)
    return bag


def read_bag_header(path: str | Path) -> dict[str, object]:
    """A feature file's attributes plus ``feature_dim`` and ``num_patches``, without reading
    the features of an HDF5 file (a ``.pt`` file is read whole, safely); the checks of
    :func:`read_bag` that need no features (file type, readable, N x D, not empty)."""
    path = Path(path)
    if path.suffix.lower() not in (".h5", ".hdf5"):
        bag = read_bag(path, with_coords=False)
        return {**bag.attrs, "feature_dim": bag.dim, "num_patches": len(bag)}
    if not path.is_file():
        raise InputDataError("feature file not found", file=str(path))
    shape, attrs = _h5_contents(
        path, lambda handle: tuple(int(n) for n in handle["features"].shape)
    )
    while len(shape) > 2 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2:
        raise InputDataError(f"features should be N × D, got shape {shape}", file=str(path))
    if shape[0] == 0:
        raise InputDataError("the feature bag is empty (0 patches)", file=str(path))
    return {**attrs, "feature_dim": shape[1], "num_patches": shape[0]}


def _h5_contents(path: Path, read) -> tuple[object, dict[str, object]]:
    """``read(handle)`` of an HDF5 feature file, and its attributes (file, ``features`` and
    ``coords`` attributes merged; TRIDENT's ``target_magnification`` as ``magnification``)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "features" not in handle:
                raise InputDataError(
                    f"no 'features' dataset (found {sorted(handle.keys())})", file=str(path)
                )
            payload = read(handle)
            attrs: dict[str, object] = {}
            for group in ("coords", "features"):
                if group in handle:
                    attrs.update({k: _from_attribute(v) for k, v in handle[group].attrs.items()})
            attrs.update({k: _from_attribute(v) for k, v in handle.attrs.items()})
    except OSError as error:
        raise InputDataError(f"cannot read HDF5 feature file ({error})", file=str(path)) from error
    if "target_magnification" in attrs and "magnification" not in attrs:
        attrs["magnification"] = attrs["target_magnification"]
    return payload, attrs


def _read_h5_bag(path: Path, with_coords: bool) -> FeatureBag:
    def read(handle):
        coords = handle["coords"][()] if with_coords and "coords" in handle else None
        return np.asarray(handle["features"][()]), None if coords is None else np.asarray(coords)

    (features, coords), attrs = _h5_contents(path, read)
    return FeatureBag(features=_squeeze(features, path), coords=coords, attrs=attrs)


def _read_torch_bag(path: Path) -> FeatureBag:
    content = torch_load(path, what=".pt feature files",
                         save_as="the features as a tensor, a dict of tensors or an .h5 file")  # fmt: skip
    coords = None
    attrs: dict[str, object] = {}
    if isinstance(content, Mapping):
        key = next((k for k in ("features", "feats", "x") if k in content), None)
        if key is None:
            raise InputDataError(
                f"no features in the saved dictionary (keys {sorted(content)})", file=str(path)
            )
        features = content[key]
        if "coords" in content:
            coords = np.asarray(content["coords"])
        attrs = {
            k: v
            for k, v in content.items()
            if k not in (key, "coords") and isinstance(v, (str, int, float, bool))
        }
    else:
        features = content
    if not hasattr(features, "numpy"):
        raise InputDataError(f"expected a tensor, got {type(features).__name__}", file=str(path))
    features = (
        features.detach().float().numpy() if features.dtype.is_floating_point else features.numpy()
    )
    return FeatureBag(features=_squeeze(features, path), coords=coords, attrs=attrs)


def _squeeze(features: np.ndarray, path: Path) -> np.ndarray:
    while features.ndim > 2 and features.shape[0] == 1:
        features = features[0]
    if features.ndim == 1:
        features = features[None, :]
    if features.ndim != 2:
        raise InputDataError(
            f"features should be N × D, got shape {features.shape}", file=str(path)
        )
    return features


def _validate(bag: FeatureBag, path: Path) -> None:
    if len(bag) == 0:
        raise InputDataError("the feature bag is empty (0 patches)", file=str(path))
    if bag.coords is not None and bag.coords.shape != (len(bag), 2):
        raise InputDataError(
            f"coords shape {bag.coords.shape} does not match {len(bag)} feature rows",
            file=str(path),
        )
    if not np.issubdtype(bag.features.dtype, np.floating):
        raise InputDataError(f"features have dtype {bag.features.dtype}, not float", file=str(path))


def check_compatible(
    bag_attrs: Mapping[str, object] | FeatureBag,
    encoder: str | None,
    dim: int | None,
    *,
    file: str | None = None,
) -> None:
    """Refuse a bag made by another encoder or of another dimension than the run expects.

    A bag that does not record its encoder (CLAM ``.pt`` files) is checked on dimension only.
    """
    if isinstance(bag_attrs, FeatureBag):
        file = file or bag_attrs.path
        attrs = dict(bag_attrs.attrs)
        attrs.setdefault("feature_dim", bag_attrs.dim)
    else:
        attrs = dict(bag_attrs)
    bag_encoder = encoder_of(attrs)
    if encoder is not None and bag_encoder is not None and bag_encoder != encoder:
        raise InputDataError(
            f"features were made by encoder {bag_encoder!r} but this run uses {encoder!r}; "
            "re-extract with the run's encoder or set the run's encoder to match",
            file=file,
        )
    bag_dim = attrs.get("feature_dim")
    if dim is not None and bag_dim is not None and int(bag_dim) != int(dim):
        raise InputDataError(
            f"features have dimension {int(bag_dim)} but this run expects {int(dim)}"
            + (f" (encoder {bag_encoder!r})" if bag_encoder else ""),
            file=file,
        )
