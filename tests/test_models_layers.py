"""Shared layers: masks, attention over long key sets, patch projection, the fused bag attention."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from kemm.models.base import PatchBudget
from kemm.models.blocks import (
    BagAttention,
    CrossAttention,
    GatedAttentionPool,
    GenomicTokenizer,
    PatchProjection,
    masked_mean,
    masked_softmax,
)
from kemm.models.kernels import FusedBagAttention, dropout_mask


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: extra threads only add synchronisation cost on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_masked_softmax_all_masked_row_is_zero_with_finite_grad():
    logits = torch.randn(2, 5, requires_grad=True)
    mask = torch.tensor([[True, False, True, False, False], [False] * 5])
    w = masked_softmax(logits, mask)
    assert torch.allclose(w[0].sum(), torch.tensor(1.0))
    assert w[0, 1] == 0 and torch.all(w[1] == 0)
    w.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_masked_mean_ignores_nan_padding():
    x = torch.tensor([[[1.0, 2.0], [float("nan"), 0.0]], [[3.0, 3.0], [5.0, 5.0]]])
    mask = torch.tensor([[True, False], [True, True]])
    assert torch.equal(masked_mean(x, mask), torch.tensor([[1.0, 2.0], [4.0, 4.0]]))


def _per_head_reference(att: CrossAttention, query, key):
    """Plain multi-head attention with keys as values, one head at a time."""
    q = att.q(query) * att.head_dim**-0.5
    outs = []
    for h in range(att.heads):
        sl = slice(h * att.head_dim, (h + 1) * att.head_dim)
        w = (q[..., sl] @ key[..., sl].transpose(1, 2)).softmax(-1)
        outs.append(w @ key[..., sl])
    return att.out(torch.cat(outs, -1))


@pytest.mark.parametrize("heads", [1, 4])
def test_cross_attention_without_kv_projection_matches_per_head_reference(heads):
    torch.manual_seed(0)
    att = CrossAttention(16, heads, project_kv=False)
    query, key = torch.randn(2, 3, 16), torch.randn(2, 50, 16)
    res = att(query, key, need_weights=True)
    assert res.weights.shape == (2, heads, 3, 50)
    assert torch.allclose(res.out, _per_head_reference(att, query, key), atol=1e-5)


def test_cross_attention_key_mask_and_fully_masked_patient():
    torch.manual_seed(0)
    att = CrossAttention(8, 2)
    query, key = torch.randn(2, 3, 8), torch.randn(2, 6, 8)
    mask = torch.tensor([[True, True, False, False, True, True], [False] * 6])
    res = att(query, key, mask, need_weights=True)
    assert torch.all(res.weights[0, :, :, 2:4] == 0)
    assert torch.all(res.out[1] == 0)  # no valid key: no update
    key2 = key.clone()
    key2[0, 2:4] = 1e3  # masked keys do not matter
    assert torch.allclose(att(query, key2, mask).out, res.out)


def test_gated_attention_pool_mask_and_bias():
    torch.manual_seed(0)
    pool = GatedAttentionPool(8, 4)
    h = torch.randn(2, 5, 8)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    pooled, w = pool(h, mask)
    assert pooled.shape == (2, 8) and torch.all(w[0, 3:] == 0)
    bias = torch.zeros(2, 5)
    bias[:, 0] = 50.0
    _, wb = pool(h, mask, bias)
    assert wb[0, 0] > 0.99


def test_genomic_tokenizer_masked_rows_may_hold_nan():
    torch.manual_seed(0)
    tok = GenomicTokenizer([3, 4], 8)
    groups = [torch.randn(2, 3), torch.randn(2, 4)]
    groups[0][1] = float("nan")
    out = tok(groups, torch.tensor([True, False]))
    assert out.shape == (2, 2, 8) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="genomic group 1 has 5 features"):
        tok([torch.randn(2, 3), torch.randn(2, 5)])


def test_patch_projection_cap_only_in_train_and_chunked_eval():
    torch.manual_seed(0)
    proj = PatchProjection(
        6, 8, dropout=0.5, budget=PatchBudget(max_train_patches=10, eval_chunk_size=7)
    )
    bag = torch.randn(33, 6)
    assert proj.train()(bag).shape == (10, 8)
    proj.eval()
    chunked = proj(bag)
    proj.budget = PatchBudget(eval_chunk_size=None)
    assert chunked.shape == (33, 8)
    assert torch.allclose(chunked, proj(bag), atol=1e-6)
    with pytest.raises(ValueError, match="different patch encoder"):
        proj.check(torch.randn(4, 7), 2)


def test_dropout_mask_rate():
    torch.manual_seed(0)
    mask = dropout_mask((400, 256), 0.25, torch.device("cpu"))
    assert mask.dtype == torch.bool
    assert abs(mask.float().mean().item() - 0.25) < 0.01


def _grads(module, bag, queries, sets, fused, seed=1):
    module.fused = fused
    module.zero_grad(set_to_none=True)
    bag.grad = queries.grad = None
    torch.manual_seed(seed)
    read = module(bag, queries, sets)
    (read.pooled.sin().sum() + (read.attended**2).sum()).backward()
    params = [p.grad.clone() for p in module.parameters() if p.grad is not None]
    return [
        read.pooled.detach(),
        read.attended.detach(),
        bag.grad.clone(),
        queries.grad.clone(),
    ] + params


@pytest.mark.parametrize("activation", ["gelu", "relu"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("with_sets", [True, False])
def test_fused_bag_attention_matches_reference(activation, dropout, with_sets):
    torch.manual_seed(0)
    module = BagAttention(12, 16, pool_hidden=4, dropout=dropout, activation=activation).double()
    module.proj.budget = PatchBudget(max_train_patches=None)
    with torch.no_grad():
        module.beta.fill_(0.7)
    bag = torch.randn(40, 12, dtype=torch.double, requires_grad=True)
    queries = torch.randn(5, 16, dtype=torch.double, requires_grad=True)
    sets = [torch.arange(5), torch.tensor([0, 2]), torch.tensor([], dtype=torch.long)]
    sets = sets if with_sets else None
    fused = _grads(module, bag, queries, sets, True)
    reference = _grads(module, bag, queries, sets, False)
    assert len(fused) == len(reference)
    for a, b in zip(fused, reference, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_fused_bag_attention_gradcheck():
    torch.manual_seed(0)
    m = BagAttention(5, 8, pool_hidden=2, dropout=0.0).double()
    params = (
        m.proj.linear.weight,
        m.proj.linear.bias,
        m.pool.gate.weight,
        m.pool.gate.bias,
        m.pool.score.weight,
        m.pool.score.bias,
    )
    inputs = [torch.randn(7, 5, dtype=torch.double, requires_grad=True)]
    inputs += [p.detach().clone().requires_grad_() for p in params]
    inputs.append(torch.randn(4, 8, dtype=torch.double, requires_grad=True))  # 3 queries + 1 set

    def fn(*args):
        return FusedBagAttention.apply(*args, 3, 0.0, "gelu", None)

    assert gradcheck(fn, inputs)


def test_bag_attention_eval_weights_and_chunking():
    torch.manual_seed(0)
    m = BagAttention(6, 8).eval()
    m.proj.budget = PatchBudget(eval_chunk_size=5)
    bag, q = torch.randn(23, 6), torch.randn(3, 8)
    read = m(bag, q, [torch.arange(3)], need_weights=True)
    assert read.query_weights.shape == (3, 23) and read.pool_weights.shape == (1, 23)
    assert torch.allclose(read.query_weights.sum(1), torch.ones(3))
    m.proj.budget = PatchBudget(eval_chunk_size=None)
    again = m(bag, q, [torch.arange(3)])
    assert torch.allclose(read.pooled, again.pooled, atol=1e-6)


def test_fused_workspace_is_not_shared_between_pending_forwards():
    torch.manual_seed(0)
    module = BagAttention(6, 8, pool_hidden=2, dropout=0.0).double()
    module.proj.budget = PatchBudget(max_train_patches=None)
    bags = [torch.randn(n, 6, dtype=torch.double) for n in (30, 17)]
    q = torch.randn(3, 8, dtype=torch.double)
    grads = []
    for fused in (True, False):
        module.fused = fused
        module.zero_grad(set_to_none=True)
        for _ in range(2):  # the second step reuses the first step's workspaces
            module.zero_grad(set_to_none=True)
            loss = sum((module(b, q, [torch.arange(3)]).pooled ** 2).sum() for b in bags)
            loss.backward()
        grads.append([p.grad.clone() for p in module.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-10)
    assert len(module._workspaces) == 2
    module.fused = True
    loss = (module(bags[0], q).pooled ** 2).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward per forward"):
        loss.backward()
    module.eval()
    assert len(module._workspaces) == 0


def test_directed_linear_keeps_the_prior_sign_and_can_leave_zero():
    import torch.nn.functional as F  # noqa: F401

    from kemm.models.blocks import DirectedLinear

    layer = DirectedLinear([1, -1, 0])
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    x = torch.eye(3)
    # a loss that wants every coefficient at -1: the +1 column stays at 0, the others move
    for _ in range(3):
        optimizer.zero_grad()
        loss = ((layer(x)[:, 0] + 1.0) ** 2).sum()
        loss.backward()
        optimizer.step()
    coef = layer(x)[:, 0].detach()
    assert coef[0] == 0 and coef[1] < -0.5 and coef[2] < -0.5
    # and back: a loss that wants +1 moves the clipped coefficient off zero at once
    optimizer.zero_grad()
    ((layer(x)[:, 0] - 1.0) ** 2).sum().backward()
    optimizer.step()
    assert layer(x)[0, 0] > 0
    free = DirectedLinear([1, -1], constrained=False)
    assert free.signs.abs().sum() == 0
