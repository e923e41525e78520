"""Registry and every registered torch model: shapes, masks, missing modalities, determinism,
train-only bag cap, chunked evaluation."""

from __future__ import annotations

import pytest
import torch

from kemm.errors import ConfigError
from kemm.models import InputDims, ModelInput, PatchBudget, create, get_entry, list_models
from kemm.survival.losses import SurvivalBatch, survival_loss

nll = survival_loss("nll")


def outcome(bins, event):
    return SurvivalBatch(
        torch.tensor(bins), torch.tensor(event), torch.tensor([float(b) + 1 for b in bins]), 4
    )


DIMS = InputDims(
    genomic_groups=[5, 7, 3],
    genomic_group_names=["a", "b", "c"],
    wsi_dim=12,
    text_dim=10,
    clinical_dim=4,
)
TORCH_MODELS = list_models("torch")
HPARAMS = {"snn": {"hidden": (16, 16)}}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: extra threads only add synchronisation cost on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_input(wsi=(True, True), gen=(True, True), report=(True, True), seed=0) -> ModelInput:
    g = torch.Generator().manual_seed(seed)
    b = len(wsi)
    return ModelInput(
        wsi=[torch.randn(20 + 3 * i, 12, generator=g) if w else None for i, w in enumerate(wsi)],
        genomics=[torch.randn(b, n, generator=g) for n in DIMS.genomic_groups],
        genomics_mask=torch.tensor(gen),
        report=torch.randn(b, 4, 10, generator=g),
        report_mask=torch.tensor([[r] * 3 + [False] for r in report]),
        pbk=torch.randn(b, 5, 10, generator=g),
        pbk_mask=torch.ones(b, 5, dtype=torch.bool),
        pbk_risk=torch.randn(b, 3, 10, generator=g),
    )


def build(name: str, seed: int = 0, **kw):
    torch.manual_seed(seed)
    hp = {"dim": 16} if name not in HPARAMS else dict(HPARAMS[name])
    return create(name, dims=DIMS, n_bins=4, **{**hp, **kw})


def test_registry_lists_kinds_and_rejects_unknown_names():
    assert {"kemm", "abmil", "mcat", "survpath", "porpoise", "snn", "report_only", "floor"} <= set(
        TORCH_MODELS
    )
    assert list_models("tabular") == ["clinical_cox", "coxnet"]
    with pytest.raises(ConfigError, match="did you mean kemm") as err:
        create("kemn", dims=DIMS, n_bins=4)
    assert "abmil" in str(err.value)
    with pytest.raises(ConfigError, match="unknown hyper-parameter"):
        create("abmil", dims=DIMS, n_bins=4, no_such_option=1)
    with pytest.raises(ConfigError, match="needs dims"):
        create("abmil")
    with pytest.raises(ConfigError, match="patch budget, not a model's: set train.bag_cap"):
        create("abmil", dims=DIMS, n_bins=4, max_train_patches=8)
    assert get_entry("mcat").hparam_names() == ["dim", "dropout", "heads", "layers"]
    model = create("kemm_no_report", dims=DIMS, n_bins=4, dim=16)
    assert model.params.dim == 16 and model.params.use_report is False  # the ablation's default
    assert "report" not in get_entry("kemm_no_report").modalities
    assert "pbk" not in get_entry("kemm_no_pbk").modalities


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_shapes_train_step_and_eval(name):
    model = build(name)
    x = make_input()
    model.train()
    loss, logs = model.training_step(x, outcome([0, 3], [1.0, 0.0]), nll)
    assert loss.ndim == 0 and torch.isfinite(loss) and "survival" in logs
    loss.backward()
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.logits.shape == (2, 4) and torch.isfinite(out.logits).all()
    assert out.embedding.shape[0] == 2


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_deterministic_with_seed(name):
    x = make_input()
    a = build(name, seed=3).eval()
    b = build(name, seed=3).eval()
    with torch.no_grad():
        assert torch.equal(a(x).logits, b(x).logits)
    a.train()
    b.train()
    torch.manual_seed(7)
    la, _ = a.training_step(x, outcome([1, 2], [1.0, 1.0]), nll)
    torch.manual_seed(7)
    lb, _ = b.training_step(x, outcome([1, 2], [1.0, 1.0]), nll)
    assert torch.equal(la, lb)


MULTIMODAL = [n for n in TORCH_MODELS if get_entry(n).requires_any_of == {"wsi", "genomics"}]


@pytest.mark.parametrize("name", MULTIMODAL)
@pytest.mark.parametrize("wsi,gen", [((True, False), (False, True)), ((False, True), (True, True))])
def test_multimodal_models_fall_back_to_available_modality(name, wsi, gen):
    model = build(name).eval()
    x = make_input(wsi=wsi, gen=gen)
    with torch.no_grad():
        out = model(x)
    assert torch.isfinite(out.logits).all()
    # a patient without genomics does not depend on its (masked) genomic values
    x2 = make_input(wsi=wsi, gen=gen)
    for g in x2.genomics:
        g[~torch.tensor(gen)] = float("nan")
    with torch.no_grad():
        assert torch.allclose(model(x2).logits, out.logits, atol=1e-6)


@pytest.mark.parametrize("name", MULTIMODAL)
def test_patient_with_neither_wsi_nor_genomics_is_an_error(name):
    model = build(name).eval()
    with pytest.raises(ValueError, match="batch index 1"):
        model(make_input(wsi=(True, False), gen=(True, False)))


@pytest.mark.parametrize(
    "name,kw",
    [
        ("snn", {"gen": (True, False)}),
        ("abmil", {"wsi": (True, False)}),
        ("report_only", {"report": (False, True)}),
    ],
)
def test_required_modality_missing_names_batch_index(name, kw):
    model = build(name).eval()
    with pytest.raises(ValueError, match="batch index"):
        model(make_input(**kw))


WSI_MODELS = [n for n in TORCH_MODELS if "wsi" in get_entry(n).modalities and n != "floor"]


@pytest.mark.parametrize("name", WSI_MODELS)
def test_chunked_eval_equals_unchunked(name):
    x = make_input()
    a, b = build(name).eval(), build(name).eval()
    a.set_patch_budget(PatchBudget(eval_chunk_size=7))
    b.set_patch_budget(PatchBudget(eval_chunk_size=None))
    with torch.no_grad():
        assert torch.allclose(a(x).logits, b(x).logits, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in WSI_MODELS if n.startswith("kemm")] + ["abmil"])
def test_bag_cap_applies_only_in_train_mode(name):
    model = build(name)
    model.set_patch_budget(PatchBudget(max_train_patches=8))
    x = make_input()
    model.train()
    out = model(x, explain=True)
    sizes = [p["patch_pool"].shape[0] for p in out.explanation["patients"] if "patch_pool" in p]
    assert sizes == [8, 8]
    model.eval()
    with torch.no_grad():
        out = model(x, explain=True)
    sizes = [p["patch_pool"].shape[0] for p in out.explanation["patients"] if "patch_pool" in p]
    assert sizes == [20, 23]


def test_report_only_uses_pbk_only_when_asked():
    x = make_input()
    y = make_input()
    y.pbk = y.pbk + 1.0
    plain = build("report_only").eval()
    with_pbk = build("report_only", use_pbk=True).eval()
    with torch.no_grad():
        assert torch.equal(plain(x).logits, plain(y).logits)
        assert not torch.allclose(with_pbk(x).logits, with_pbk(y).logits)


def test_no_gradient_reaches_text_inputs():
    model = build("report_only").train()
    x = make_input()
    x.report.requires_grad_(True)
    loss, _ = model.training_step(x, outcome([0, 1], [1.0, 1.0]), nll)
    loss.backward()
    assert x.report.grad is None


def test_porpoise_concat_fusion_and_bad_fusion():
    model = build("porpoise", fusion="concat").eval()
    with torch.no_grad():
        assert model(make_input()).logits.shape == (2, 4)
    with pytest.raises(ConfigError):
        build("porpoise", fusion="sum")


def test_wrong_feature_size_is_a_clear_error():
    model = build("abmil").eval()
    x = make_input()
    x.wsi[1] = torch.randn(5, 11)
    with pytest.raises(ValueError, match="batch index 1"):
        model(x)


@pytest.mark.parametrize("name", ["mcat", "survpath", "porpoise"])
def test_multimodal_baselines_without_slides_use_their_genomic_branch(name):
    """A run with no slides at all builds the genomic branch only (the fallback these models
    apply to a patient without a slide); genomics still drive the prediction."""
    dims = InputDims(**{**DIMS.__dict__, "wsi_dim": None})
    torch.manual_seed(0)
    no_wsi = create(name, dims=dims, n_bins=4, dim=16).eval()
    assert getattr(no_wsi, "proj", None) is None
    x = make_input(wsi=(False, False))
    x.wsi = None
    with torch.no_grad():
        out = no_wsi(x).logits
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    y = make_input(wsi=(False, False), seed=1)
    y.wsi = None
    with torch.no_grad():
        assert not torch.allclose(out, no_wsi(y).logits)  # genomics drive the prediction
    with pytest.raises(ConfigError, match="needs genomics"):
        create(name, dims=InputDims(wsi_dim=12), n_bins=4, dim=16)


def test_survpath_scores_a_patient_the_same_whatever_its_batch():
    """Patients without a slide are attended in one batched call and patients with one alone;
    either way a patient's risk is its own, not its batch companions'."""
    model = build("survpath").eval()
    x = make_input(wsi=(True, False, False, True), gen=(True, True, True, False),
                   report=(True,) * 4)  # fmt: skip
    with torch.no_grad():
        together = model(x).logits
        for b in range(4):
            one = ModelInput(
                wsi=[x.wsi[b]], genomics=[g[b : b + 1] for g in x.genomics],
                genomics_mask=x.genomics_mask[b : b + 1],
            )  # fmt: skip
            assert torch.allclose(model(one).logits[0], together[b], atol=1e-5)
    assert not torch.allclose(together[1], together[2])  # genomics drive the slide-free rows
