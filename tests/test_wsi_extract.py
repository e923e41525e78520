"""End-to-end extraction on the real slides: outputs, error isolation, resume, locks, CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import replace

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from kemm.wsi import extract as extract_module
from kemm.wsi.extract import ExtractionConfig, SlideLock, SlideProcessor, extract_features
from kemm.wsi.features import check_compatible, read_bag
from kemm.wsi.slide import MppOverrides
from kemm.wsi.tiling import TilingParams

pytestmark = pytest.mark.data

CMU = "cmu-1-small-region.svs"
TCGA = "tcga-cr-7395-01a-01-ts1.svs"
TCGA_ID = "tcga-cr-7395-01a-01-ts1"


@pytest.fixture
def batch(data_root, tmp_path):
    """A folder with CMU-1, the TCGA slide (no mpp in its metadata) and a truncated copy."""
    folder = tmp_path / "slides"
    folder.mkdir()
    shutil.copy(data_root / "slides" / CMU, folder / CMU)
    shutil.copy(data_root / "slides" / TCGA, folder / TCGA)
    data = (data_root / "slides" / CMU).read_bytes()
    (folder / "truncated.svs").write_bytes(data[: int(len(data) * 0.6)])
    return folder


def fast_config(**changes) -> ExtractionConfig:
    """tiny encoder; TCGA at 5× from an assumed 0.5 µm/px, so few patches."""
    config = ExtractionConfig(
        encoder="tiny_random",
        batch_size=16,
        num_workers=0,
        progress=False,
        mpp_overrides=MppOverrides({TCGA_ID: 0.5}),
        tiling=TilingParams(magnification=5.0),
    )
    return replace(config, **changes)


def test_batch_extracts_valid_bags_and_isolates_errors(batch, tmp_path):
    out = tmp_path / "features"
    summary = extract_features(batch, out, fast_config(num_workers=1))
    assert {r.slide_id for r in summary.processed} == {"cmu-1-small-region", TCGA_ID}
    assert [r.slide_id for r in summary.failed] == ["truncated"]
    failure = summary.failed[0]
    assert failure.slide_path == str(batch / "truncated.svs") and "truncated" in failure.reason

    for slide_id in ("cmu-1-small-region", TCGA_ID):
        bag = read_bag(out / f"{slide_id}.h5")
        assert bag.features.shape == (len(bag), 32) and len(bag) > 0
        assert np.isfinite(bag.features).all()
        assert bag.coords.shape == (len(bag), 2)
        assert bag.attrs["encoder"] == "tiny_random" and bag.attrs["feature_dim"] == 32
        assert bag.attrs["magnification"] == 5.0 and bag.attrs["patch_size"] == 256
        assert bag.attrs["kemm_version"]
        check_compatible(bag, "tiny_random", 32)
        assert (out / "review" / f"{slide_id}.png").is_file()
        state = json.loads((out / f"{slide_id}.state.json").read_text())
        assert state["status"] == "done" and state["num_patches"] == len(bag)
    tcga = read_bag(out / f"{TCGA_ID}.h5")
    assert tcga.attrs["mpp"] == 0.5 and tcga.attrs["mpp_source"] == "override"
    assert tcga.attrs["patch_size_level0"] == 1024
    assert (tcga.coords % 1024 == 0).all()

    report = json.loads((out / "run_summary.json").read_text())
    assert report["counts"] == {"processed": 2, "skipped": 0, "failed": 1}
    assert report["failed"][0]["slide_id"] == "truncated" and report["failed"][0]["reason"]
    assert report["patches"] == summary.num_patches and report["patches_per_second"] > 0
    assert not list(out.glob("*.lock"))


def test_second_run_skips_finished_slides_and_retries_failed_ones(batch, tmp_path):
    out = tmp_path / "features"
    config = fast_config()
    extract_features(batch, out, config)
    written = (out / "cmu-1-small-region.h5").stat().st_mtime_ns
    summary = extract_features(batch, out, config)
    assert {r.slide_id for r in summary.skipped} == {"cmu-1-small-region", TCGA_ID}
    assert all(r.reason == "already done" for r in summary.skipped)
    assert [r.slide_id for r in summary.failed] == ["truncated"]
    assert (out / "cmu-1-small-region.h5").stat().st_mtime_ns == written
    assert len(list((out / "runs").glob("*.json"))) == 2

    # The broken slide is repaired: the next run picks it up.
    shutil.copy(batch / CMU, batch / "truncated.svs")
    summary = extract_features(batch, out, config)
    assert [r.slide_id for r in summary.processed] == ["truncated"]


def test_slide_without_mpp_fails_until_an_override_is_given(batch, tmp_path):
    out = tmp_path / "features"
    summary = extract_features([batch / TCGA], out, fast_config(mpp_overrides=None))
    (failure,) = summary.failed
    assert "microns-per-pixel" in failure.reason and "--mpp-override" in failure.reason
    state = json.loads((out / f"{TCGA_ID}.state.json").read_text())
    assert state["status"] == "failed" and "microns-per-pixel" in state["reason"]
    summary = extract_features([batch / TCGA], out, fast_config())
    assert [r.slide_id for r in summary.processed] == [TCGA_ID]


def test_changed_settings_are_not_mixed_into_a_finished_folder(batch, tmp_path):
    out = tmp_path / "features"
    extract_features([batch / CMU], out, fast_config())
    other = fast_config(tiling=TilingParams(magnification=10.0))
    (failure,) = extract_features([batch / CMU], out, other).failed
    assert "other settings" in failure.reason and "--overwrite" in failure.reason
    summary = extract_features([batch / CMU], out, replace(other, overwrite=True))
    assert len(summary.processed) == 1
    assert read_bag(out / "cmu-1-small-region.h5").attrs["magnification"] == 10.0


def test_another_slide_of_the_same_name_is_not_skipped_as_done(batch, tmp_path):
    out = tmp_path / "features"
    extract_features([batch / CMU], out, fast_config())
    elsewhere = tmp_path / "other_scanner"
    elsewhere.mkdir()
    shutil.copy(batch / TCGA, elsewhere / CMU)  # a different slide, the same file name
    (failure,) = extract_features([elsewhere / CMU], out, fast_config()).failed
    assert "another slide of the same name" in failure.reason and "--overwrite" in failure.reason
    moved = tmp_path / "moved"
    shutil.copytree(batch, moved)  # the same slide in a moved folder is still done
    (skipped,) = extract_features([moved / CMU], out, fast_config()).skipped
    assert skipped.reason == "already done"


def test_locked_slide_is_left_to_its_worker_and_stale_locks_are_taken(batch, tmp_path):
    out = tmp_path / "features"
    out.mkdir()
    holder = SlideLock(out, "cmu-1-small-region", stale_seconds=3600)
    assert holder.acquire()
    other_worker = SlideLock(out, "cmu-1-small-region", stale_seconds=3600)
    assert not other_worker.acquire()
    (skipped,) = extract_features([batch / CMU], out, fast_config()).skipped
    assert skipped.reason.startswith("locked by")
    holder.release()

    # A lock left by a dead process on this host is stale.
    lock_path = out / "cmu-1-small-region.lock"
    lock_path.write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 12345}))
    summary = extract_features([batch / CMU], out, fast_config(overwrite=True))
    assert len(summary.processed) == 1 and not lock_path.exists()

    # So is a lock older than the limit, whoever holds it.
    lock_path.write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    old = time.time() - 7200
    os.utime(lock_path, (old, old))
    assert SlideLock(out, "cmu-1-small-region", stale_seconds=3600).acquire()


def test_a_failing_patch_read_fails_only_that_slide(batch, tmp_path, monkeypatch):
    original = extract_module.PatchDataset.__getitem__

    def flaky(self, index):
        if "cmu-1" in self.slide_path and index == 0:
            raise OSError("simulated read error on patch 0")
        return original(self, index)

    monkeypatch.setattr(extract_module.PatchDataset, "__getitem__", flaky)
    out = tmp_path / "features"
    summary = extract_features([batch / CMU, batch / TCGA], out, fast_config())
    (failure,) = summary.failed
    assert failure.slide_id == "cmu-1-small-region"
    assert "simulated read error on patch 0" in failure.reason
    assert [r.slide_id for r in summary.processed] == [TCGA_ID]
    assert not (out / "cmu-1-small-region.h5").exists()


def test_fp16_storage_and_encoder_loaded_once(batch, tmp_path):
    processor = SlideProcessor(tmp_path / "features", fast_config(fp16_storage=True))
    processor.run([batch / CMU, batch / TCGA])
    with h5py.File(tmp_path / "features" / "cmu-1-small-region.h5", "r") as handle:
        assert handle["features"].dtype == np.float16
    assert processor.encoder.name == "tiny_random"


def test_skipping_needs_no_model(batch, tmp_path, monkeypatch):
    out = tmp_path / "features"
    extract_features([batch / CMU], out, fast_config())

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built for a finished slide")

    monkeypatch.setattr(extract_module, "create", no_model)
    summary = extract_features([batch / CMU], out, fast_config())
    assert len(summary.skipped) == 1


def test_an_encoder_that_cannot_be_built_stops_the_run(batch, tmp_path):
    from kemm.errors import ConfigError

    out = tmp_path / "features"
    config = fast_config(encoder="resnet50_trunc", weights=str(tmp_path / "absent.pth"))
    with pytest.raises(ConfigError, match="absent.pth"):
        extract_features([batch / CMU, batch / TCGA], out, config)
    assert not list(out.glob("*.state.json")) and not list(out.glob("*.lock"))


# -- command line --------------------------------------------------------------------------------
def test_cli_extract_then_heatmap(batch, tmp_path):
    from kemm.cli import app

    runner = CliRunner()
    overrides = tmp_path / "mpp.csv"
    overrides.write_text(f"slide,mpp\n{TCGA_ID},0.5\n")
    out = tmp_path / "features"
    arguments = ["extract", str(batch), "--out", str(out), "--encoder", "tiny_random",
                 "--magnification", "5", "--mpp-override", str(overrides), "--workers", "0",
                 "--batch-size", "8", "--fp16", "--no-progress"]  # fmt: skip
    result = runner.invoke(app, arguments)
    assert result.exit_code == 1, result.output  # the truncated slide failed
    assert "truncated" in result.output and "processed 2" in result.output
    assert read_bag(out / f"{TCGA_ID}.h5").attrs["mpp"] == 0.5

    result = runner.invoke(app, arguments)
    assert "skipped 2" in result.output

    bag = read_bag(out / f"{TCGA_ID}.h5")
    explanation = tmp_path / "explain.json"
    explanation.write_text(json.dumps({"coords": bag.coords.tolist(),
                                       "scores": list(range(len(bag)))}))  # fmt: skip
    png = tmp_path / "heat.png"
    result = runner.invoke(app, ["heatmap", str(explanation), "--slide", str(batch / TCGA),
                                 "--features", str(out / f"{TCGA_ID}.h5"), "--out", str(png),
                                 "--max-side", "400"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert png.is_file()


def test_cli_reports_configuration_errors(batch, tmp_path):
    from kemm.cli import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["extract", str(batch), "--out", str(tmp_path), "--encoder", "nope"]
    )
    assert result.exit_code == 2 and "unknown encoder" in result.output
    result = runner.invoke(
        app, ["extract", str(batch), "--out", str(tmp_path), "--weights", "absent.pth"]
    )
    assert result.exit_code == 2 and "absent.pth" in result.output
    result = runner.invoke(app, ["extract", "--list-encoders"])
    assert result.exit_code == 0 and "resnet50_trunc" in result.output
    result = runner.invoke(
        app, ["extract", str(batch), "--out", str(tmp_path), "--min-tissue", "1.5"]
    )
    assert result.exit_code == 2 and "min_tissue" in result.output
