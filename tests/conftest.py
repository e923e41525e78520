"""Test tiers: fast tests run everywhere; tests marked ``data`` need ../shared/data and skip with
a visible reason when it is absent, unless KEMM_REQUIRE_DATA=1 (set by .ci/run), where absence
fails. Tests marked ``llm`` need the embedded GGUF model and follow the same rule with
KEMM_REQUIRE_LLM=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"


def _data_root() -> Path:
    return Path(os.environ.get("KEMM_DATA_ROOT", DEFAULT_DATA_ROOT))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real-data folder (TCGA cohorts, slides, signatures)."""
    root = _data_root()
    if not (root / "tcga").is_dir():
        message = f"real data not found at {root} (set KEMM_DATA_ROOT)"
        if os.environ.get("KEMM_REQUIRE_DATA") == "1":
            pytest.fail(message + "; KEMM_REQUIRE_DATA=1 makes it mandatory")
        pytest.skip(message)
    return root


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    """Tests use tiny models: one thread is faster and immune to CPU oversubscription."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
