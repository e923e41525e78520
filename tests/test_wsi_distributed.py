"""Ray-distributed extraction on a local one-CPU Ray instance."""

from __future__ import annotations

import json
import shutil

import pytest

from kemm.wsi.extract import ExtractionConfig
from kemm.wsi.features import read_bag
from kemm.wsi.tiling import TilingParams

pytestmark = [pytest.mark.data, pytest.mark.slow]

CMU = "cmu-1-small-region.svs"


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_run_matches_a_local_run_and_isolates_errors(local_ray, data_root, tmp_path):
    from kemm.wsi.distributed import extract_features_ray
    from kemm.wsi.extract import extract_features

    slides = tmp_path / "slides"
    slides.mkdir()
    shutil.copy(data_root / "slides" / CMU, slides / CMU)
    data = (data_root / "slides" / CMU).read_bytes()
    (slides / "truncated.svs").write_bytes(data[: len(data) // 3])
    config = ExtractionConfig(
        encoder="tiny_random",
        num_workers=0,
        batch_size=16,
        progress=False,
        tiling=TilingParams(magnification=10.0),
    )

    out = tmp_path / "ray"
    summary = extract_features_ray(slides, out, config)
    assert [r.slide_id for r in summary.processed] == ["cmu-1-small-region"]
    assert [r.slide_id for r in summary.failed] == ["truncated"]
    report = json.loads((out / "run_summary.json").read_text())
    assert report["settings"]["ray_actors"] == 1 and report["settings"]["ray_gpus"] == 0
    assert local_ray.is_initialized(), "a Ray instance the caller started stays up"

    local = extract_features(slides, tmp_path / "local", config)
    ray_bag = read_bag(out / "cmu-1-small-region.h5")
    local_bag = read_bag(tmp_path / "local" / "cmu-1-small-region.h5")
    assert (ray_bag.coords == local_bag.coords).all()
    assert abs(ray_bag.features - local_bag.features).max() < 1e-4
    assert len(local.processed) == 1

    again = extract_features_ray(slides, out, config)
    assert [r.slide_id for r in again.skipped] == ["cmu-1-small-region"]
