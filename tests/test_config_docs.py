"""The config reference is generated from the schema (so it cannot drift), and `kemm config
check` validates a config without training, naming the key and where its value came from."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kemm.cli import app
from kemm.cohort.simulate import simulate_cohort
from kemm.engine.config import EXAMPLES, RunConfig, config_reference, parse_config

REPO = Path(__file__).resolve().parents[1]


def _examples() -> dict[str, str]:
    return {file: (REPO / "examples" / file).read_text() for _, file in EXAMPLES}


def test_docs_config_md_is_the_generated_reference():
    expected = config_reference(_examples())
    assert (REPO / "docs" / "config.md").read_text() == expected, (
        "docs/config.md is out of date: run `kemm config docs`"
    )


def test_every_key_has_a_meaning_and_every_example_is_valid():
    from kemm.cohort import config as data

    for model in (RunConfig, data.DataConfig, data.GenomicsConfig, data.WSIConfig,
                  data.ReportsConfig):  # fmt: skip
        for key, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{key} has no description"
    for file, text in _examples().items():
        parse_config(yaml.safe_load(text), source=file)
    reference = config_reference()
    assert "| `train.genomic_clip` |" in reference and "| `data.wsi.features_dir` |" in reference


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    simulate_cohort(root, n_patients=40, patches=(5, 10), feature_dim=8, show_progress=False)
    return root


def _config(root: Path, tmp_path: Path, models, **data) -> Path:
    raw = {"name": "check-me", "data": {"root": str(root), "cohort": "sim", **data},
           "models": models, "train": {"epochs": 2}}  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def kemm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    return line


def test_config_check_reads_everything_and_trains_nothing(sim_root, tmp_path):
    models = [
        {"name": "coxnet"},
        {"name": "abmil"},
        {"name": "stack", "params": {"base": ["coxnet"]}},
    ]
    config = _config(sim_root, tmp_path, models,
                     wsi={"features_dir": str(sim_root / "features")}, pbk=True,
                     reports={"column": "raw_text"}, clinical=["age", "grade"])  # fmt: skip
    result = kemm("config", "check", "--config", config)
    assert result.exit_code == 0, result.output
    assert "slides: 40 of 40 patients have a feature bag" in result.output
    assert "model 'abmil': reads wsi" in result.output and "config 'check-me': OK" in result.output
    assert "model 'stack': combines the out-of-fold risks of ['coxnet']" in result.output
    assert not list(tmp_path.glob("**/folds"))


def test_config_check_names_a_mistyped_hyper_parameter(sim_root, tmp_path):
    for value, phrase in ((12.5, "got 12.5"), ("128", "got the text '128'")):
        config = _config(sim_root, tmp_path, [{"name": "kemm", "params": {"dim": value}}])
        line = _one_error_line(kemm("config", "check", "--config", config))
        assert "params.dim must be int" in line and phrase in line


def test_a_bad_set_value_is_blamed_on_the_set_and_a_bad_file_value_on_its_line(sim_root, tmp_path):
    config = _config(sim_root, tmp_path, [{"name": "coxnet"}])
    line = _one_error_line(
        kemm("config", "check", "--config", config, "--set", "train.epochs=five")
    )
    assert "--set train.epochs=five: train.epochs" in line
    text = config.read_text().replace("epochs: 2", "epochs: two")
    config.write_text(text)
    line_no = text.splitlines().index("  epochs: two") + 1
    line = _one_error_line(kemm("config", "check", "--config", config))
    assert f"{config}, line {line_no}: train.epochs" in line


def test_bags_that_match_no_slide_say_so_with_examples(sim_root, tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (sim_root / "features").iterdir().__next__()  # the real bags exist ...
    for bag in list((sim_root / "features").glob("*.h5"))[:2]:  # ... but under other names
        (folder / f"renamed-{bag.name}").write_bytes(bag.read_bytes())
    config = _config(sim_root, tmp_path, [{"name": "abmil"}], wsi={"features_dir": str(folder)})
    line = _one_error_line(kemm("config", "check", "--config", config))
    assert str(folder) in line and "no feature bag matches a slide" in line
    assert "renamed-" in line and "slide ids" in line


def test_models_lists_each_models_typed_hyper_parameters():
    result = kemm("config", "models")
    assert result.exit_code == 0, result.output
    assert "kemm (torch; reads" in result.output and "dim: int = 256" in result.output


def test_help_pages_show_flags_without_a_value_type():
    result = kemm("predict", "--help")
    assert result.exit_code == 0 and "--allow-missing" in result.output
    assert "<bool>" not in result.output and "<path>" in result.output
