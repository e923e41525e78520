"""KEMM: views (teacher / student), switches, losses, explanations, the fused patch path."""

from __future__ import annotations

import pytest
import torch

from kemm.errors import ConfigError
from kemm.models import KEMM, InputDims, ModelInput, PatchBudget, create
from kemm.models.kemm import hazard_distillation, risk_level_targets
from kemm.survival.losses import SurvivalBatch, survival_loss

nll = survival_loss("nll")

DIMS = InputDims(
    genomic_groups=[5, 7, 3], genomic_group_names=["a", "b", "c"], wsi_dim=12, text_dim=10
)
BINS, EVENT = torch.tensor([0, 3, 1]), torch.tensor([1.0, 0.0, 1.0])
Y = SurvivalBatch(BINS, EVENT, torch.tensor([2.0, 40.0, 9.0]), 4)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: extra threads only add synchronisation cost on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_input(
    wsi=(True, False, True), gen=(True, True, False), report=(True, False, True), seed=0
) -> ModelInput:
    g = torch.Generator().manual_seed(seed)
    b = len(wsi)
    return ModelInput(
        wsi=[torch.randn(20 + 3 * i, 12, generator=g) if w else None for i, w in enumerate(wsi)],
        genomics=[torch.randn(b, n, generator=g) for n in DIMS.genomic_groups],
        genomics_mask=torch.tensor(gen),
        report=torch.randn(b, 4, 10, generator=g),
        report_mask=torch.tensor([[r] * 3 + [False] for r in report]),
        pbk=torch.randn(b, 5, 10, generator=g),
        pbk_mask=torch.tensor([[True] * 5, [True] * 4 + [False], [True] * 5]),
        pbk_risk=torch.randn(b, 3, 10, generator=g),
    )


def build(seed: int = 0, name: str = "kemm", **kw) -> KEMM:
    torch.manual_seed(seed)
    return create(name, dims=DIMS, n_bins=4, dim=16, heads=2, **kw)


def logits(model: KEMM, x: ModelInput, **kw) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x, **kw).logits


# ------------------------------------------------------------------ inputs and views


@pytest.mark.parametrize(
    "wsi,gen,report",
    [
        ((True, True, True), (True, True, True), (True, True, True)),
        ((True, False, True), (False, True, True), (False, False, True)),
        ((False, False, False), (True, True, True), (True, False, False)),
        ((True, True, True), (False, False, False), (False, False, False)),
    ],
)
def test_any_modality_may_be_missing(wsi, gen, report):
    model = build()
    x = make_input(wsi, gen, report)
    out = logits(model, x)
    assert out.shape == (3, 4) and torch.isfinite(out).all()
    model.train()
    loss, logs = model.training_step(x, Y, nll)
    loss.backward()
    assert torch.isfinite(loss)
    assert ("kd" in logs) == any(report)


def test_neither_wsi_nor_genomics_names_the_batch_index():
    with pytest.raises(ValueError, match="batch index 1 has neither WSI nor genomics"):
        build()(make_input(wsi=(True, False, True), gen=(True, False, False)))


def test_student_view_ignores_reports():
    model = build()
    x = make_input()
    student = logits(model, x, use_report=False)
    assert torch.equal(student, logits(model, x.without_report()))
    y = make_input()
    y.report = torch.randn_like(y.report)
    assert torch.equal(student, logits(model, y, use_report=False))


def test_teacher_view_uses_reports_only_where_present():
    model = build()
    x = make_input(report=(True, False, True))
    teacher, student = logits(model, x), logits(model, x, use_report=False)
    assert torch.allclose(teacher[1], student[1], atol=1e-5)  # no report: teacher == student
    assert not torch.allclose(teacher[0], student[0], atol=1e-4)


@pytest.mark.parametrize(
    "wsi,gen", [((True, False, True), (True, True, False)), ((False,) * 3, (True,) * 3)]
)
def test_views_fused_together_equal_each_view_alone(wsi, gen):
    """A batch with and without reports runs both views in one call, each view's transformer on
    its own positions (the student's shorter: no report tokens; an absent modality's none):
    each row equals the view computed alone (``explain`` takes the single-view path)."""
    model = build().eval()
    x = make_input(wsi=wsi, gen=gen, report=(True, False, True))
    with torch.no_grad():
        both = model(x).logits
        teacher = model(x, explain=True).logits
        student = model(x, use_report=False, explain=True).logits
    assert torch.allclose(both[[0, 2]], teacher[[0, 2]], atol=1e-5)
    assert torch.allclose(both[1], student[1], atol=1e-5)
    assert not torch.allclose(teacher[0], student[0], atol=1e-4)


def _row(x: ModelInput, i: int) -> ModelInput:
    """Patient ``i`` of a batch alone."""
    one = slice(i, i + 1)
    return ModelInput(
        wsi=x.wsi[one],
        genomics=[g[one] for g in x.genomics],
        genomics_mask=x.genomics_mask[one],
        report=x.report[one],
        report_mask=x.report_mask[one],
        pbk=x.pbk[one],
        pbk_mask=x.pbk_mask[one],
        pbk_risk=x.pbk_risk[one],
    )


@pytest.mark.parametrize("use_kecm", [True, False])
def test_each_patient_scores_and_explains_as_it_would_alone(use_kecm):
    """A batch drops the positions masked in all its rows, so a patient alone runs on another
    sequence than in a batch: its logits and the CLS attention on each statement (mapped back
    to all positions) must not change."""
    model = build(use_kecm=use_kecm).eval()
    x = make_input(wsi=(True, False, False), gen=(True, True, True), report=(True, False, True))
    with torch.no_grad():
        for kw in ({}, {"use_report": False}):
            batch = model(x, explain=True, **kw)
            for i in range(3):
                alone = model(_row(x, i), explain=True, **kw)
                assert torch.allclose(batch.logits[i], alone.logits[0], atol=1e-5)
                got = batch.explanation["patients"][i]["statement_weight"]
                want = alone.explanation["patients"][0]["statement_weight"]
                assert torch.allclose(got, want, atol=1e-5)
            scored = model(x, **kw).logits  # without explain: report-less rows by the student
            for i in range(3):
                assert torch.allclose(scored[i], model(_row(x, i), **kw).logits[0], atol=1e-5)


def test_padded_knowledge_may_hold_nan():
    model = build()
    x = make_input()
    y = make_input()
    y.report[~y.report_mask] = float("nan")
    y.pbk[~y.pbk_mask] = float("nan")
    assert torch.equal(logits(model, x), logits(model, y))


def test_no_gradient_reaches_text_inputs():
    model = build().train()
    x = make_input()
    for t in (x.report, x.pbk, x.pbk_risk):
        t.requires_grad_(True)
    loss, _ = model.training_step(x, Y, nll)
    loss.backward()
    assert x.report.grad is None and x.pbk.grad is None and x.pbk_risk.grad is None
    assert model.text_proj[0].weight.grad is not None  # the projections do learn


# ------------------------------------------------------------------ switches


def test_use_pbk_false_ignores_pbk():
    x, y = make_input(), make_input()
    y.pbk = y.pbk + 1.0
    assert not torch.allclose(logits(build(), x), logits(build(), y))
    off = build(use_pbk=False)
    assert torch.equal(logits(off, x), logits(off, y))


def test_clinical_covariates_enter_only_when_switched_on():
    dims = InputDims(**{**DIMS.__dict__, "clinical_dim": 3})

    def make(**kw) -> KEMM:
        torch.manual_seed(0)
        return create("kemm", dims=dims, n_bins=4, dim=16, heads=2, **kw)

    x, y = make_input(), make_input()
    x.clinical = torch.zeros(3, 3)
    y.clinical = torch.ones(3, 3)
    on = make()
    assert not torch.allclose(logits(on, x), logits(on, y))
    on.train()
    loss, _ = on.training_step(y, Y, nll)
    loss.backward()
    assert on.clinical_linear.weight.grad.abs().sum() > 0  # the linear hazard term learns
    off = make(use_clinical=False)
    assert not hasattr(off, "clinical_token")
    assert torch.equal(logits(off, x), logits(off, y))
    without = make_input()  # a run without the clinical modality: same model, no covariates
    assert torch.isfinite(logits(on, without)).all()


def test_use_report_false_ignores_report_everywhere():
    off = build(name="kemm_no_report")
    x, y = make_input(), make_input()
    y.report = torch.randn_like(y.report)
    assert torch.equal(logits(off, x), logits(off, y))
    off.train()
    torch.manual_seed(1)
    la, logs = off.training_step(x, Y, nll)
    torch.manual_seed(1)
    lb, _ = off.training_step(y, Y, nll)
    assert torch.equal(la, lb)
    assert not {"kd", "report_align"} & set(logs)


def test_use_kecm_false_is_plain_co_attention():
    off = build(use_kecm=False)
    assert not hasattr(off, "gen_attn")
    x = make_input()
    out = off(x, explain=True)
    labels = out.explanation["patients"][0]["patch_queries"]
    assert [q for q in labels if not q.startswith("learned")] == [
        "genomic:a",
        "genomic:b",
        "genomic:c",
    ]
    y = make_input()
    y.pbk = y.pbk + 1.0  # knowledge still reaches the fusion transformer as context tokens
    assert not torch.allclose(logits(off, x), logits(off, y))


@pytest.mark.parametrize(
    "switch,keys",
    [
        ("use_distillation", {"kd", "kd_hazard", "kd_embedding", "survival_student"}),
        ("use_risk_alignment", {"risk_align"}),
        ("use_report_alignment", {"report_align"}),
    ],
)
def test_loss_switches(switch, keys):
    x = make_input()
    on, off = build().train(), build(**{switch: False}).train()
    _, logs_on = on.training_step(x, Y, nll)
    _, logs_off = off.training_step(x, Y, nll)
    assert keys <= set(logs_on)
    assert not keys & set(logs_off)
    assert set(logs_on) - keys == set(logs_off)


def test_switches_do_not_change_the_network_output():
    x = make_input()
    ref = logits(build(), x)
    for switch in ("use_risk_alignment", "use_report_alignment"):
        assert torch.equal(logits(build(**{switch: False}), x), ref)
    # distillation adds the student's own adapter and head: patients with a report keep the
    # teacher's output, the one without (index 1) is scored by the student
    off = logits(build(use_distillation=False), x)
    assert torch.equal(off[[0, 2]], ref[[0, 2]])
    assert not torch.allclose(off[1], ref[1])


def test_student_losses_leave_the_shared_encoder_alone():
    """Distillation trains the student's adapter and head only: the shared encoder and the
    teacher's head get no gradient from the student's survival loss or from KD."""
    model = build().train()
    x = make_input()
    enc = model._encode(x, ("teacher", "student"), False)
    out = model._fuse(enc, ("teacher", "student"), False)
    student_loss = nll(out["student"].logits, Y) + out["student"].z.pow(2).mean()
    student_loss.backward()
    shared = [p for n, p in model.named_parameters() if not n.startswith("student_")]
    assert all(p.grad is None or not p.grad.abs().any() for p in shared)
    assert any(p.grad is not None and p.grad.abs().any() for p in model.student_head.parameters())
    assert any(
        p.grad is not None and p.grad.abs().any() for p in model.student_adapter.parameters()
    )


def test_kd_needs_a_report_in_the_batch():
    model = build().train()
    _, logs = model.training_step(make_input(report=(False, False, False)), Y, nll)
    assert "kd" not in logs and "report_align" not in logs and "risk_align" in logs


def test_text_dim_missing_is_a_config_error():
    dims = InputDims(genomic_groups=[5], wsi_dim=12)
    with pytest.raises(ConfigError, match="use_report=False"):
        KEMM(dims, 4)
    model = KEMM(
        dims,
        4,
        KEMM.Params(
            dim=16,
            heads=2,
            use_report=False,
            use_pbk=False,
            use_risk_alignment=False,
            use_report_alignment=False,
        ),
    )
    x = make_input()
    x.genomics = x.genomics[:1]
    assert logits(model, x).shape == (3, 4)


# ------------------------------------------------------------------ numerics


def test_chunked_eval_equals_unchunked_and_is_deterministic():
    x = make_input()
    a, b, again = build(), build(), build()
    a.set_patch_budget(PatchBudget(eval_chunk_size=5))
    b.set_patch_budget(PatchBudget(eval_chunk_size=None))
    again.set_patch_budget(PatchBudget(eval_chunk_size=5))
    assert torch.allclose(logits(a, x), logits(b, x), atol=1e-5)
    assert torch.equal(logits(a, x), logits(again, x))


def test_fused_patch_path_matches_reference_in_training():
    x = make_input()
    grads = []
    for fused in (True, False):
        model = build(dropout=0.0, patch_dropout=0.0, genomic_dropout=0.0).double().train()
        model.bag.fused = fused
        xd = ModelInput(
            wsi=[w.double() if w is not None else None for w in x.wsi],
            genomics=[g.double() for g in x.genomics],
            genomics_mask=x.genomics_mask,
            report=x.report.double(),
            report_mask=x.report_mask,
            pbk=x.pbk.double(),
            pbk_mask=x.pbk_mask,
            pbk_risk=x.pbk_risk.double(),
        )
        loss, _ = model.training_step(xd, Y, nll)
        loss.backward()
        grads.append([loss.detach()] + [p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-9)


def test_explanation_contents():
    model = build().eval()
    x = make_input(report=(True, False, True))
    with torch.no_grad():
        exp = model(x, explain=True).explanation
    assert exp["genomic_groups"] == ["a", "b", "c"]
    p0, p1, p2 = exp["patients"]
    k0 = len(p0["statements"])
    assert k0 == 4 + 5 + 3 and p0["statements"][-1] == "report:2"
    assert p0["patch_attention"].shape == (k0, 20)
    assert torch.allclose(p0["patch_attention"].sum(1), torch.ones(k0))
    assert p0["genomic_attention"].shape == (k0, 3)
    assert torch.allclose(p0["statement_weight"].sum(), torch.tensor(1.0))
    assert "patch_attention" not in p1 and len(p1["statements"]) == 4 + 4  # no WSI, no report
    assert "genomic_attention" not in p2  # no genomics
    assert model(x).explanation == {}


# ------------------------------------------------------------------ loss helpers


def test_risk_level_targets():
    bins = torch.tensor([0, 3, 1, 0, 1, 3])
    event = torch.tensor([1, 1, 1, 0, 0, 0])
    t = risk_level_targets(bins, event, 4).int().tolist()  # columns: low, intermediate, high
    assert t == [[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 1], [1, 1, 0], [1, 0, 0]]
    assert risk_level_targets(bins[:1], event[:1], 1).all()


@pytest.mark.parametrize("kind", ["kl", "bce", "event_time"])
def test_hazard_distillation(kind):
    t = torch.randn(4, 5, requires_grad=True)
    s = torch.randn(4, 5, requires_grad=True)
    same = hazard_distillation(t.detach(), t, kind)
    d = hazard_distillation(s, t, kind)
    if kind != "bce":
        assert torch.allclose(same, torch.zeros(4), atol=1e-6)
    assert torch.all(d > same)
    d.sum().backward()
    assert t.grad is None and s.grad is not None
    with pytest.raises(ConfigError):
        hazard_distillation(s, t, "nope")


# ------------------------------------------------------------------ report facts


FACT_COLUMNS = ["grade>=2", "grade>=3", "grade>=4", "grade=unknown", "stage>=2", "stage=unknown"]
FACT_DIMS = InputDims(
    genomic_groups=[5, 7, 3], genomic_group_names=["a", "b", "c"], text_dim=10,
    fact_columns=FACT_COLUMNS, fact_directions=[1, 1, 1, 0, 1, 0],
)  # fmt: skip
GRADE_1 = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
GRADE_4 = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]


def facts_input(rows) -> ModelInput:
    """Three patients with genomics, reports and the given fact rows, no slides."""
    x = make_input(wsi=(False,) * 3, gen=(True,) * 3, report=(True,) * 3)
    x.wsi = None
    x.facts = torch.tensor(rows)
    return x


def test_fact_tokens_tell_grade_1_from_grade_4():
    """One token per fact, carrying its value: the grade tokens of grade 1 and grade 4 differ
    far more than the wording of two statements does, the stage tokens (same stage) not."""
    torch.manual_seed(0)
    model = KEMM(FACT_DIMS, 4, KEMM.Params(dim=16, heads=2, fusion_layers=1)).eval()
    assert model.fact_names == ["grade", "stage"]
    tokens = model.fact_tokens(torch.tensor([GRADE_1, GRADE_4]))
    grade = torch.nn.functional.cosine_similarity(tokens[0, 0], tokens[1, 0], dim=0)
    stage = torch.nn.functional.cosine_similarity(tokens[0, 1], tokens[1, 1], dim=0)
    assert stage > 0.999 and grade < 0.5
    _, _, report_pos, labels = model._knowledge(facts_input([GRADE_1, GRADE_4, GRADE_1]), 3, True)
    assert labels[-2:] == ["fact:grade", "fact:stage"] and report_pos[-2:].all()


def test_facts_are_report_knowledge():
    """Facts reach the teacher only; the student and the −report ablation never read them, and
    the linear fact term keeps PBK's direction of effect."""
    x = facts_input([GRADE_1, GRADE_4, GRADE_1])
    torch.manual_seed(0)
    model = KEMM(FACT_DIMS, 4, KEMM.Params(dim=16, heads=2, fusion_layers=1))
    with torch.no_grad():
        model.fact_linear.weight.copy_(torch.tensor([0.5, 0.5, 0.5, 0.2, 0.3, -0.1]))
    model.eval()
    y = facts_input([GRADE_4, GRADE_1, GRADE_4])
    assert not torch.allclose(model(x).logits, model(y).logits)
    assert torch.equal(model(x, use_report=False).logits, model(y, use_report=False).logits)
    off = create("kemm_no_report", dims=FACT_DIMS, n_bins=4, dim=16, heads=2).eval()
    assert not hasattr(off, "fact_tokens")
    assert torch.equal(off(x).logits, off(y).logits)
    # PBK's directions constrain the fact term; without PBK it is free
    with torch.no_grad():
        model.fact_linear.weight.fill_(-1.0)
    model.fact_linear(x.facts)
    assert model.fact_linear.weight.tolist() == [0.0, 0.0, 0.0, -1.0, 0.0, -1.0]
    free = KEMM(FACT_DIMS, 4, KEMM.Params(dim=16, heads=2, use_pbk=False, use_risk_alignment=False))
    assert free.fact_linear.signs.abs().sum() == 0


def test_cox_output_trains_through_every_kemm_loss():
    """With one output (the Cox loss) the teacher, the student, distillation and both
    alignments all take part, and the risk levels come from the fold's time bins."""
    torch.manual_seed(0)
    model = KEMM(FACT_DIMS, 1, KEMM.Params(dim=16, heads=2, fusion_layers=1)).train()
    x = facts_input([GRADE_1, GRADE_4, GRADE_1])
    loss, logs = model.training_step(x, Y, survival_loss("cox"))
    loss.backward()
    assert {"survival", "survival_student", "kd", "risk_align", "report_align"} <= set(logs)
    assert model.fact_tokens.weight.grad is not None and model.fact_linear.weight.grad is not None
