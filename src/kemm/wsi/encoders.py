"""Patch encoders: one factory, models by name, weights from local files.

Every encoder is a :class:`PatchEncoder` that declares what it needs and gives: ``name``,
``input_size`` (square side in pixels), ``mean``/``std`` (normalisation), ``output_dim``.
``encoder.preprocess(uint8 patches)`` resizes and normalises a batch on the encoder's device, and
``encoder(images)`` returns (B, output_dim) features.

Names understood by :func:`create`:

- ``resnet50_trunc``: ImageNet ResNet-50 cut after layer 3 with average pooling (1024-d, the
  CLAM/MCAT convention), in plain torch with torchvision's state-dict keys, so torchvision or timm
  ``resnet50`` checkpoints load (``weights=path`` to a ``.safetensors`` or ``.pth`` file);
- ``tiny_random``: a small seeded random CNN (32-d) for tests and smoke runs;
- ``phikon``: the Phikon ViT-B (768-d) through Hugging Face ``transformers``;
- ``timm:<model name>``: any timm model (needs the optional ``timm`` extra), with ``weights``;
- ``hf:<hub id or local folder>``: any Hugging Face vision transformer (ViT, DINOv2, ...): the
  class token of the last hidden state.

No weights are downloaded by kemm itself. Where ``weights`` is not given, the table named by the
environment variable ``KEMM_ENCODER_WEIGHTS`` (a JSON or YAML file mapping encoder name → local
path) is consulted, for offline machines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as functional
from torch import nn

from kemm.errors import ConfigError, InputDataError
from kemm.io import torch_load

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_TABLE_ENV = "KEMM_ENCODER_WEIGHTS"


class PatchEncoder(nn.Module):
    """A network from images to feature vectors, with the preprocessing it expects."""

    def __init__(
        self,
        network: nn.Module,
        *,
        name: str,
        input_size: int,
        output_dim: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        embed: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
        weights: str | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.channels_last = channels_last
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.network = network
        self.name = name
        self.input_size = int(input_size)
        self.output_dim = int(output_dim)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.weights = weights
        self._embed = embed
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._mean.device

    def preprocess(self, patches: torch.Tensor) -> torch.Tensor:
        """uint8 patches (B, 3, H, W) or (B, H, W, 3) → normalised float (B, 3, S, S) on device."""
        if patches.ndim != 4:
            raise ValueError(f"expected a batch of images, got shape {tuple(patches.shape)}")
        if patches.shape[1] != 3 and patches.shape[-1] == 3:
            patches = patches.permute(0, 3, 1, 2)
        images = patches.to(self.device, non_blocking=True).float()
        if patches.dtype == torch.uint8:
            images = images / 255.0
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = functional.interpolate(
                images,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        images = (images - self._mean) / self._std
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self._embed is not None:
            return self._embed(self.network, images)
        return self.network(images)

    def describe(self) -> dict[str, object]:
        """What a feature file records about the encoder."""
        return {
            "encoder": self.name,
            "feature_dim": self.output_dim,
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "weights": self.weights or "",
        }


# -- registry -------------------------------------------------------------------------------------
EncoderFactory = Callable[..., PatchEncoder]


@dataclass(frozen=True)
class WeightsSource:
    """Where an encoder's weights come from, under which licence, and where kemm looks for
    them (kemm downloads nothing)."""

    source: str  # who publishes them, and where
    licence: str
    local: str  # what to pass as --weights (or name in the KEMM_ENCODER_WEIGHTS table)

    def line(self) -> str:
        return f"weights: {self.source}; licence: {self.licence}; give them as {self.local}"


@dataclass(frozen=True)
class EncoderEntry:
    name: str
    factory: EncoderFactory
    description: str
    weights: WeightsSource


_REGISTRY: dict[str, EncoderEntry] = {}
_PREFIXES: dict[str, EncoderEntry] = {}


def register(name: str, description: str = "", *, weights: WeightsSource, prefix: bool = False):
    """Decorator registering ``factory(weights=None, **kwargs) -> PatchEncoder`` under ``name``;
    ``weights`` says where its weights come from (every encoder must say).

    With ``prefix=True`` the name is a family (``"timm"``) and the factory receives the rest of
    ``"timm:<model>"`` as its first argument.
    """

    def decorator(factory: EncoderFactory) -> EncoderFactory:
        table = _PREFIXES if prefix else _REGISTRY
        if name in table:
            raise ValueError(f"encoder {name!r} is already registered")
        text = description or (factory.__doc__ or "").strip()
        table[name] = EncoderEntry(name, factory, text, weights)
        return factory

    return decorator


def list_encoders() -> list[str]:
    """Registered encoder names, then the families usable as ``family:<model>``."""
    return sorted(_REGISTRY) + [f"{family}:<model>" for family in sorted(_PREFIXES)]


def describe_encoders() -> dict[str, str]:
    """Each encoder name with a one-line description and where its weights come from."""
    entries = {name: entry for name, entry in sorted(_REGISTRY.items())}
    entries.update({f"{family}:<model>": entry for family, entry in sorted(_PREFIXES.items())})
    return {
        name: (entry.description.splitlines()[0] if entry.description else "")
        + f" — {entry.weights.line()}"
        for name, entry in entries.items()
    }


def weights_source(name: str) -> WeightsSource:
    """Where the weights of encoder ``name`` (or ``family:<model>``) come from."""
    check_name(name)
    return _REGISTRY[name].weights if name in _REGISTRY else _PREFIXES[name.split(":")[0]].weights


def check_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is a registered encoder or ``family:<model>``."""
    if name in _REGISTRY or (":" in name and name.split(":", 1)[0] in _PREFIXES):
        return
    raise ConfigError(
        f"unknown encoder {name!r}; available: {', '.join(list_encoders())}" + _nearest_hint(name)
    )


def create(name: str, weights: str | Path | None = None, **kwargs: object) -> PatchEncoder:
    """Build an encoder by name (see the module docstring), in eval mode on the CPU."""
    check_name(name)
    if weights is None:
        weights = _weights_from_table(name)
    if name in _REGISTRY:
        encoder = _REGISTRY[name].factory(weights=weights, **kwargs)
    else:
        family, model = name.split(":", 1)
        encoder = _PREFIXES[family].factory(model, weights=weights, **kwargs)
    return encoder.eval()


def _nearest_hint(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _weights_from_table(name: str) -> str | None:
    table_path = os.environ.get(WEIGHTS_TABLE_ENV)
    if not table_path:
        return None
    path = Path(table_path)
    if not path.is_file():
        raise ConfigError(f"{WEIGHTS_TABLE_ENV}={table_path} does not name a file")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        table = yaml.safe_load(text) or {}
    else:
        table = json.loads(text)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path}: expected a mapping encoder name → weights path")
    value = table.get(name)
    return str(value) if value else None


# -- weights --------------------------------------------------------------------------------------
def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only=True``), unwrapped from
    ``{"state_dict": ...}``/``{"model": ...}`` and stripped of ``module.`` prefixes."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError("encoder weights file not found", file=str(path))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as error:  # noqa: BLE001 - any decoding failure is a bad file
            raise InputDataError(f"cannot read encoder weights ({error})", file=str(path)) from None
    else:
        state = torch_load(path, what="encoder weights",
                           save_as="a state dict of tensors (or a .safetensors file)")  # fmt: skip
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise InputDataError("expected a state dict (a mapping of tensors)", file=str(path))
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value
    return cleaned


def load_weights_into(
    network: nn.Module, path: str | Path, ignore_prefixes: tuple[str, ...] = ()
) -> None:
    """Load a checkpoint into ``network`` strictly, except for keys under ``ignore_prefixes``."""
    state = load_state_dict(path)
    expected = network.state_dict()
    unexpected = [k for k in state if k not in expected and not k.startswith(ignore_prefixes)]
    missing = [k for k in expected if k not in state]
    if missing or unexpected:
        raise InputDataError(
            f"weights do not match {type(network).__name__}: "
            f"{len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})",
            file=str(path),
        )
    wrong_shape = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong_shape:
        key = wrong_shape[0]
        raise InputDataError(
            f"weights have the wrong shape for {key}: {tuple(state[key].shape)} "
            f"instead of {tuple(expected[key].shape)}",
            file=str(path),
        )
    network.load_state_dict({k: state[k] for k in expected}, strict=True)


# -- ResNet-50 truncated after layer 3 -------------------------------------------------------------
class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3×3 convolution)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50Trunc(nn.Module):
    """ResNet-50 stem and layers 1–3, then global average pooling: (B, 3, H, W) → (B, 1024)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 64, blocks=3, stride=1)
        self.layer2 = self._make_layer(256, 128, blocks=4, stride=2)
        self.layer3 = self._make_layer(512, 256, blocks=6, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _make_layer(in_channels: int, width: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [Bottleneck(in_channels, width, stride)]
        layers += [Bottleneck(width * 4, width) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(self.pool(x), 1)


RESNET50_WEIGHTS = WeightsSource(
    "torchvision ResNet50_Weights.IMAGENET1K_V1 (download.pytorch.org/models/resnet50-0676ba61.pth) "
    "or timm resnet50.a1_in1k",
    "BSD-3-Clause (torchvision) / Apache-2.0 (timm); ImageNet terms apply",
    "--weights /path/to/resnet50.pth (or .safetensors)",
)


@register("resnet50_trunc", "ImageNet ResNet-50 truncated after layer 3, 1024-d (CLAM/MCAT)",
          weights=RESNET50_WEIGHTS)  # fmt: skip
def _resnet50_trunc(
    weights: str | Path | None = None, allow_random: bool = False, seed: int = 0
) -> PatchEncoder:
    """ImageNet ResNet-50 truncated after layer 3, 1024-d (CLAM/MCAT); weights from a local file."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = ResNet50Trunc()
    if weights is not None:
        load_weights_into(network, weights, ignore_prefixes=("layer4.", "fc."))
    elif not allow_random:
        raise ConfigError(
            "encoder 'resnet50_trunc' needs ImageNet weights from a local file: "
            f"{RESNET50_WEIGHTS.line()} (or name the file in the {WEIGHTS_TABLE_ENV} table); "
            "for a first try without weights use --encoder tiny_random, or --random-weights "
            "(features without biology, for timing only)"
        )
    name = "resnet50_trunc" if weights is not None else "resnet50_trunc-random"
    return PatchEncoder(
        network,
        name=name,
        input_size=224,
        output_dim=1024,
        weights=str(weights) if weights else None,
        channels_last=True,
    )


# -- tiny random encoder ---------------------------------------------------------------------------
class TinyConvNet(nn.Module):
    """Three strided convolutions and average pooling: a cheap, deterministic feature map."""

    def __init__(self, output_dim: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 5, stride=4, padding=2),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, output_dim, 3, stride=2, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register("tiny_random", "small seeded random CNN, 32-d, for tests and smoke runs",
          weights=WeightsSource("none: seeded random (no file needed)", "kemm's (Apache-2.0)",
                                "nothing"))  # fmt: skip
def _tiny_random(
    weights: str | Path | None = None, output_dim: int = 32, input_size: int = 64, seed: int = 0
) -> PatchEncoder:
    """Small seeded random CNN (32-d) for tests and smoke runs; features carry no biology."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = TinyConvNet(output_dim)
    if weights is not None:
        load_weights_into(network, weights)
    return PatchEncoder(
        network,
        name="tiny_random",
        input_size=input_size,
        output_dim=output_dim,
        weights=str(weights) if weights else None,
    )


# -- timm ------------------------------------------------------------------------------------------
def _import_optional(module: str, install: str, encoder: str):
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - a broken install fails in many ways
        raise ConfigError(
            f"encoder {encoder!r} needs the optional package {module!r}, which cannot be imported "
            f"here ({type(error).__name__}: {error}); install it with {install} "
            f"(a version that works with your torch {torch.__version__})"
        ) from error


@register("timm", "any timm model by name, weights from a local checkpoint", prefix=True,
          weights=WeightsSource("the model's timm / Hugging Face Hub page", "the model's own (see "
                                "its model card)", "--weights /path/to/checkpoint.safetensors"))  # fmt: skip
def _timm_encoder(
    model_name: str, weights: str | Path | None = None, **kwargs: object
) -> PatchEncoder:
    """Any timm model by name (``timm:vit_base_patch16_224``), weights from a local checkpoint."""
    timm = _import_optional("timm", "pip install 'kemm[timm]'", f"timm:{model_name}")
    options: dict[str, object] = {"num_classes": 0, **kwargs}
    if weights is not None:
        options.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    network = timm.create_model(model_name, **options)
    config = getattr(network, "pretrained_cfg", {}) or {}
    input_size = int(config.get("input_size", (3, 224, 224))[-1])
    return PatchEncoder(
        network,
        name=f"timm:{model_name}",
        input_size=input_size,
        output_dim=int(network.num_features),
        mean=tuple(config.get("mean", IMAGENET_MEAN)),
        std=tuple(config.get("std", IMAGENET_STD)),
        weights=str(weights) if weights else None,
    )


# -- Hugging Face ----------------------------------------------------------------------------------
def _hf_preprocessing(source: str, config: object) -> tuple[int, tuple, tuple]:
    """Input size, mean and std from ``preprocessor_config.json`` (read as JSON, so no image
    processor class or torchvision is needed), falling back to the model config and ImageNet."""
    settings: dict = {}
    local = Path(source) / "preprocessor_config.json"
    if local.is_file():
        settings = json.loads(local.read_text())
    else:
        try:
            from huggingface_hub import hf_hub_download

            settings = json.loads(
                Path(hf_hub_download(source, "preprocessor_config.json")).read_text()
            )
        except Exception:  # noqa: BLE001 - optional file; fall back to defaults
            settings = {}

    def side(value: object) -> int | None:
        if isinstance(value, int):
            return value
        if isinstance(value, Mapping):
            for key in ("height", "shortest_edge", "width"):
                if key in value:
                    return int(value[key])
        return None

    size = None
    if settings.get("do_center_crop", False):
        size = side(settings.get("crop_size"))
    size = size or side(settings.get("size")) or getattr(config, "image_size", None) or 224
    mean = tuple(settings.get("image_mean", IMAGENET_MEAN))
    std = tuple(settings.get("image_std", IMAGENET_STD))
    return int(size), mean, std


def _class_token(network: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return network(pixel_values=images).last_hidden_state[:, 0]


def _mean_token(network: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return network(pixel_values=images).last_hidden_state[:, 1:].mean(dim=1)


@register(
    "hf", "Hugging Face vision transformer (ViT, DINOv2, ...) by hub id or folder", prefix=True,
    weights=WeightsSource("the Hugging Face Hub repository named", "the model's own (see its "
                          "model card; UNI, CONCH and Virchow are gated, non-commercial)",
                          "--weights /path/to/local/model/folder (or a populated HF cache)"),
)  # fmt: skip
def _hf_encoder(
    source: str,
    weights: str | Path | None = None,
    pooling: str = "cls",
    name: str | None = None,
    **kwargs: object,
) -> PatchEncoder:
    """Hugging Face vision transformer by hub id or local folder; class token (or mean) of the
    last hidden state. ``weights`` may name a local folder that replaces the hub id."""
    transformers = _import_optional("transformers", "pip install transformers", f"hf:{source}")
    location = str(weights) if weights is not None else source
    try:
        network = transformers.AutoModel.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot load Hugging Face model {location!r} ({' '.join(str(error).split())[:160]}); "
            f"{weights_source(name or 'hf:' + source).line()}"
        ) from error
    if pooling not in ("cls", "mean"):
        raise ConfigError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
    input_size, mean, std = _hf_preprocessing(location, network.config)
    return PatchEncoder(
        network,
        name=name or f"hf:{source}",
        input_size=input_size,
        output_dim=int(network.config.hidden_size),
        mean=mean,
        std=std,
        embed=_class_token if pooling == "cls" else _mean_token,
        weights=str(weights) if weights else None,
    )


@register("phikon", "Phikon ViT-B/16 (owkin/phikon), 768-d, via transformers",
          weights=WeightsSource("huggingface.co/owkin/phikon", "Owkin non-commercial licence",
                                "--weights /path/to/phikon (a saved model folder)"))  # fmt: skip
def _phikon(weights: str | Path | None = None, **kwargs: object) -> PatchEncoder:
    """Phikon ViT-B/16 (owkin/phikon), 768-d class token; ``weights`` = local model folder."""
    return _hf_encoder("owkin/phikon", weights=weights, name="phikon", **kwargs)


# -- running ----------------------------------------------------------------------------------------
def encode_batch(encoder: PatchEncoder, patches: torch.Tensor, amp: bool = True) -> torch.Tensor:
    """Features (B, output_dim) in float32 for a batch of uint8 patches, under inference mode;
    mixed precision (float16) only on CUDA and only when ``amp``."""
    device = encoder.device
    with torch.inference_mode():
        images = encoder.preprocess(patches)
        if amp and device.type == "cuda":
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                features = encoder(images)
        else:
            features = encoder(images)
    return features.float()
