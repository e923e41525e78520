"""Patches per second of each built-in patch encoder, on the CPU and on CUDA when available.

Times preprocessing (resize + normalise) and the forward pass on batches of random 256-px uint8
patches, after warm-up. Weights are random (none can be downloaded here): speed does not depend
on the values of the weights, and the output says so. ``phikon`` is timed as its architecture
(a ViT-B/16 built from a default config) when ``transformers`` imports.

With ``--slide`` it also times the whole pipeline (tissue, tiling, reading, encoding, HDF5) on
that slide with the tiny encoder.

    python benchmarks/bench_wsi_encoders.py [--batches 3] [--batch-size 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from kemm.wsi.encoders import PatchEncoder, create, encode_batch


def _phikon_architecture() -> PatchEncoder | None:
    try:
        from transformers import ViTConfig, ViTModel
    except Exception:  # noqa: BLE001 - optional
        return None
    from kemm.wsi.encoders import _class_token

    network = ViTModel(ViTConfig(image_size=224, patch_size=16), add_pooling_layer=False)
    return PatchEncoder(
        network,
        name="phikon-architecture-random",
        input_size=224,
        output_dim=768,
        embed=_class_token,
    )


def built_in_encoders() -> dict[str, tuple[PatchEncoder, str]]:
    """Name → (encoder with random weights, note)."""
    encoders: dict[str, tuple[PatchEncoder, str]] = {
        "tiny_random": (create("tiny_random"), "random by design"),
        "resnet50_trunc": (
            create("resnet50_trunc", allow_random=True),
            "random-init weights (same speed as ImageNet weights)",
        ),
    }
    phikon = _phikon_architecture()
    if phikon is not None:
        encoders["phikon"] = (phikon, "ViT-B/16 architecture, random-init weights")
    return encoders


def time_encoder(
    encoder: PatchEncoder, device: torch.device, batch_size: int, batches: int, patch_size: int
) -> dict[str, float]:
    encoder = encoder.to(device)
    patches = torch.randint(0, 256, (batch_size, 3, patch_size, patch_size), dtype=torch.uint8)
    encode_batch(encoder, patches)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(batches):
        encode_batch(encoder, patches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    encoder.to("cpu")
    return {
        "patches_per_second": round(batch_size * batches / seconds, 2),
        "seconds": round(seconds, 3),
        "patches": batch_size * batches,
    }


def time_pipeline(slide: Path, workers: int) -> dict[str, object]:
    from kemm.wsi.extract import ExtractionConfig, extract_features

    with tempfile.TemporaryDirectory() as out:
        config = ExtractionConfig(
            encoder="tiny_random", num_workers=workers, batch_size=32, progress=False
        )
        start = time.perf_counter()
        summary = extract_features([slide], out, config)
        total = time.perf_counter() - start
    result = summary.to_dict()
    return {
        "slide": slide.name,
        "patches": result["patches"],
        "encode_patches_per_second": result["patches_per_second"],
        "end_to_end_seconds": round(total, 2),
        "failed": [r["reason"] for r in result["failed"]],
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--patch-size", type=int, default=256)
    parser.add_argument("--only", nargs="*", help="encoder names to time (default: all)")
    parser.add_argument("--slide", type=Path, help="also time the whole pipeline on this slide")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)

    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    report: dict[str, object] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "batch_size": args.batch_size,
        "patch_size": args.patch_size,
        "note": "weights are random-init; throughput does not depend on weight values",
        "encoders": {},
    }
    for name, (encoder, note) in built_in_encoders().items():
        if args.only and name not in args.only:
            continue
        entry: dict[str, object] = {
            "output_dim": encoder.output_dim,
            "input_size": encoder.input_size,
            "weights": note,
        }
        for device in devices:
            entry[device.type] = time_encoder(
                encoder, device, args.batch_size, args.batches, args.patch_size
            )
        report["encoders"][name] = entry  # type: ignore[index]
        rates = ", ".join(
            f"{device.type}: {entry[device.type]['patches_per_second']:.1f} patches/s"  # type: ignore[index]
            for device in devices
        )
        print(f"{name:16s} {encoder.output_dim:5d}-d  {rates}   ({note})", file=sys.stderr)
    if args.slide is not None:
        report["pipeline"] = time_pipeline(args.slide, args.workers)
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
