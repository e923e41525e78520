"""``kemm extract`` (slides → HDF5 patch features) and ``kemm heatmap`` (scores over a slide)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from kemm.cli.common import configure_logging, console, fail, option_group
from kemm.errors import KemmError

if TYPE_CHECKING:
    from kemm.wsi.tiling import TilingParams


def _tiling(**values: object) -> TilingParams:
    """The tiling options as :class:`~kemm.wsi.tiling.TilingParams` (a bad value is a usage
    error)."""
    from kemm.wsi.tiling import TilingParams

    try:
        return TilingParams(**values)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error


with_tiling_options = option_group(
    {
        "magnification": (float, typer.Option(
            20.0, help="Target magnification (20 ≈ 0.5 µm/px).")),
        "patch_size": (int, typer.Option(
            256, help="Patch side in pixels at that magnification.")),
        "min_tissue": (float, typer.Option(0.5, help="Minimum tissue fraction of a kept patch.")),
        "overlap": (int, typer.Option(0, help="Overlap of neighbouring patches, in pixels.")),
    },
    _tiling,
    "tiling",
)  # fmt: skip

# How the extraction runs, by its ExtractionConfig field (the flags keep their short names).
with_run_options = option_group(
    {
        "batch_size": (int, typer.Option(64, help="Patches per forward pass.")),
        "num_workers": (int, typer.Option(
            2, "--workers", help="DataLoader worker processes reading patches.")),
        "fp16_storage": (bool, typer.Option(False, "--fp16", help="Store features as float16.")),
        "device": (str, typer.Option("auto", help="auto, cpu, cuda, cuda:1, mps.")),
        "overwrite": (bool, typer.Option(
            False, "--overwrite/--no-overwrite", help="Redo slides that are already done.")),
        "save_review": (bool, typer.Option(
            True, "--review/--no-review", help="Save review thumbnails (tissue + patch grid).")),
        "progress": (bool, typer.Option(
            True, "--progress/--no-progress", help="Show progress bars.")),
    },
    dict,
    "run",
)  # fmt: skip


def _list_encoders(value: bool) -> None:
    if not value:
        return
    from kemm.wsi.encoders import describe_encoders

    for name, description in describe_encoders().items():
        typer.echo(f"{name:18s} {description}")
    raise typer.Exit()


def _print_summary(summary, out: Path) -> None:
    counts = summary.to_dict()["counts"]
    rate = summary.to_dict()["patches_per_second"]
    console.print(
        f"processed {counts['processed']}, skipped {counts['skipped']}, failed {counts['failed']} "
        f"slides; {summary.num_patches} patches at {rate} patches/s → {out}"
    )
    if summary.failed:
        table = Table("slide", "path", "reason", title="failed slides", show_lines=False)
        for result in summary.failed:
            table.add_row(result.slide_id, result.slide_path, result.reason)
        console.print(table)
    console.print(f"run summary: {out / 'run_summary.json'}")


def register(app: typer.Typer) -> None:
    @app.command()
    @with_run_options
    @with_tiling_options
    def extract(
        slides: Path = typer.Argument(
            ..., help="A folder of slides, one slide, or a text/CSV file listing slide paths."
        ),
        out: Path = typer.Option(..., "--out", help="Output folder for <slide>.h5 feature files."),
        encoder: str = typer.Option(
            "resnet50_trunc",
            help="Patch encoder: resnet50_trunc, tiny_random, phikon, timm:<name>, hf:<id|dir>.",
        ),
        weights: str | None = typer.Option(
            None, help="Local weights: .safetensors/.pth file, or a Hugging Face model folder."
        ),
        random_weights: bool = typer.Option(
            False, "--random-weights", help="Allow resnet50_trunc without weights (timing only)."
        ),
        mpp_override: Path | None = typer.Option(
            None,
            "--mpp-override",
            help="CSV (columns slide,mpp) or YAML/JSON (slide: mpp) for slides lacking mpp.",
        ),
        ray_address: str | None = typer.Option(
            None,
            "--ray-address",
            help="Spread slides over a Ray cluster (address, or 'local' for a local instance).",
        ),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Log tracebacks of failures."),
        list_encoders: bool = typer.Option(
            False,
            "--list-encoders",
            callback=_list_encoders,
            is_eager=True,
            help="List the encoders and exit.",
        ),
        tiling: TilingParams = None,  # type: ignore[assignment]
        run: dict[str, object] = None,  # type: ignore[assignment]
    ) -> None:
        """Segment tissue, tile and encode slides into CLAM/TRIDENT-compatible HDF5 bags.

        Resumable: slides already done are skipped; a failed slide is recorded in
        run_summary.json and the batch goes on. Exits 1 when any slide failed.
        """
        from kemm.wsi.encoders import check_name
        from kemm.wsi.extract import ExtractionConfig, extract_features
        from kemm.wsi.slide import MppOverrides

        configure_logging(verbose)
        try:
            overrides = MppOverrides.load(mpp_override) if mpp_override else None
            encoder_kwargs: dict[str, object] = {}
            if random_weights:
                if encoder != "resnet50_trunc":
                    raise typer.BadParameter("--random-weights applies to resnet50_trunc only")
                encoder_kwargs["allow_random"] = True
            check_name(encoder)
            config = ExtractionConfig(
                encoder=encoder, weights=weights, encoder_kwargs=encoder_kwargs, tiling=tiling,
                mpp_overrides=overrides, **run,
            )  # fmt: skip
            if ray_address:
                from kemm.wsi.distributed import extract_features_ray

                summary = extract_features_ray(slides, out, config, address=ray_address)
            else:
                summary = extract_features(slides, out, config)
        except KemmError as error:
            fail(error)
            return
        _print_summary(summary, out)
        if summary.failed:
            raise typer.Exit(code=1)

    @app.command()
    def heatmap(
        explanation: Path = typer.Argument(
            ..., help="JSON with coords and scores per patch (from kemm explain)."
        ),
        slide: Path = typer.Option(..., "--slide", help="The slide the patches come from."),
        out: Path = typer.Option(..., "--out", help="PNG to write."),
        slide_id: str | None = typer.Option(
            None, help="Which slide of a multi-slide explanation file."
        ),
        features: Path | None = typer.Option(
            None, help="The slide's feature file, to read the patch size from."
        ),
        patch_size_level0: int | None = typer.Option(
            None, help="Patch side in level-0 pixels (if neither JSON nor features give it)."
        ),
        colormap: str = typer.Option("jet", help="Matplotlib colormap."),
        alpha: float = typer.Option(0.45, help="Opacity of the heat layer."),
        normalize: str = typer.Option("rank", help="rank, minmax or none."),
        max_side: int = typer.Option(2048, help="Longest side of the PNG."),
    ) -> None:
        """Render per-patch scores over the slide thumbnail as a PNG."""
        from kemm.wsi.features import read_bag
        from kemm.wsi.heatmap import load_patch_scores, render_heatmap
        from kemm.wsi.slide import slide_id_of

        try:
            coords, scores, recorded_size = load_patch_scores(
                explanation, slide_id=slide_id or None
            )
            size = patch_size_level0 or recorded_size
            if size is None and features is not None:
                size = int(read_bag(features, with_coords=False).attrs["patch_size_level0"])
            if size is None:
                raise typer.BadParameter(
                    "the patch size is unknown: pass --patch-size-level0 or --features"
                )
            path = render_heatmap(
                slide,
                coords,
                scores,
                int(size),
                out,
                colormap=colormap,
                alpha=alpha,
                normalize=normalize,
                max_side=max_side,
            )
        except KemmError as error:
            fail(error)
            return
        except KeyError as error:
            fail(KemmError(f"{features}: no attribute {error} in the feature file"))
            return
        console.print(f"heatmap of {len(scores)} patches of {slide_id_of(slide)} → {path}")
