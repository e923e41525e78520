"""The training-step benchmark and ``kemm bench step``."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from kemm.errors import ConfigError
from kemm.models.benchmark import bench_step


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("model", ["floor", "kemm", "abmil"])
def test_bench_step_reports_time_and_memory(model):
    out = bench_step(model, 300, 32, device="cpu", steps=2, warmup=1)
    assert out["model"] == model and out["patches"] == 300 and out["features"] == 32
    assert out["device"] == "cpu" and out["dtype"] == "float32"
    assert out["step_seconds"] > 0 and len(out["step_seconds_all"]) == 2
    assert out["peak_mb"] is None or out["peak_mb"] > 0
    assert "survival" in out["losses"]


def test_bench_rejects_tabular_models():
    with pytest.raises(ConfigError, match="tabular"):
        bench_step("coxnet", 10, 8)


def test_cli_bench_step_prints_one_json_object():
    import typer

    from kemm.cli.bench import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "step",
            "--model",
            "floor",
            "--patches",
            "200",
            "--features",
            "16",
            "--device",
            "cpu",
            "--steps",
            "1",
            "--warmup",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert {"step_seconds", "peak_mb", "model", "patches", "features", "device", "dtype"} <= set(
        data
    )
