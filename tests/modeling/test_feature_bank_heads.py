"""
Feature-bank heads (ACFB, LFB) and the bank-attention block: a hand-computed attention case,
location-wise masking, empty memory = identity, shapes, batched = one by one, bank entries equal
the extraction model's own intermediate maps, a bank-only task is learned, bad inputs.
Tiny widths (slow 16 + fast 4 channels, 8x8 maps of 128 px clips), seeded, CPU.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from detectron2.modeling import ROI_HEADS_REGISTRY

import acar_d2  # noqa: F401  (registers the heads)
from acar_d2.engine import setup_cfg
from acar_d2.modeling.roi_heads import (ACARROIHeads, ACFBROIHeads, BaselineROIHeads, LFBROIHeads,
                                        compute_bank_entries)
from acar_d2.modeling.roi_heads.bank_attention import BankAttentionBlock
from acar_d2.modeling.roi_heads.feature_bank_heads import pad_bank
from acar_d2.modeling.roi_heads.layout import ClipActorLayout

from .test_roi_heads import COMMON, IMAGE, K, SMALL, make_boxes, make_features


def _identity_block(c: int) -> BankAttentionBlock:
    blk = BankAttentionBlock(c, kernel_size=1, out_kernel_size=1, dropout=0.0)
    with torch.no_grad():
        for conv in (blk.conv_q, blk.conv_k, blk.conv_v):
            conv.weight.copy_(torch.eye(c)[:, :, None, None])
    return blk.eval()


def test_attention_known_answer():
    """One actor, two bank entries, 1x1 maps, identity projections: softmax(q.k / sqrt(C)) v."""
    blk = _identity_block(2)
    x = torch.tensor([[1.0, 2.0]])[:, :, None, None]  # (R=1, C=2, 1, 1)
    bank = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])[:, :, :, None, None]  # (N=1, M=2, 2, 1, 1)
    mask = torch.ones(1, 2, 1, 1, 1)
    layout = ClipActorLayout([1], torch.device("cpu"))
    s = torch.tensor([3.0, 2.0]) / math.sqrt(2)  # <q, k_m> / sqrt(C)
    a = torch.softmax(s, 0)
    expected = a[0] * torch.tensor([3.0, 0.0]) + a[1] * torch.tensor([0.0, 1.0])
    out = blk.attend(x, layout, bank, mask)[0, :, 0, 0]
    assert torch.allclose(out, expected, atol=1e-6), (out, expected)
    # a masked (empty) slot is ignored: only entry 1 remains -> its value exactly
    mask[0, 0] = 0
    out = blk.attend(x, layout, bank * mask, mask)[0, :, 0, 0]
    assert torch.allclose(out, torch.tensor([0.0, 1.0]), atol=1e-6)


def test_attention_is_location_wise():
    """At each cell only the entries having that cell take part; values never cross cells."""
    blk = _identity_block(1)
    x = torch.ones(1, 1, 1, 2)  # one actor, a 1x2 map
    bank = torch.tensor([[5.0, 7.0], [1.0, 0.0]])[None, :, None, None, :]  # (1, M=2, 1, 1, 2)
    mask = torch.ones(1, 2, 1, 1, 2)
    mask[0, 1, 0, 0, 1] = 0  # entry 1 has only the left cell
    layout = ClipActorLayout([1], torch.device("cpu"))
    out = blk.attend(x, layout, bank * mask, mask)[0, 0, 0]
    a = torch.softmax(torch.tensor([5.0, 1.0]), 0)
    assert torch.allclose(out[0], a[0] * 5 + a[1] * 1, atol=1e-6)
    assert torch.allclose(out[1], torch.tensor(7.0), atol=1e-6)  # only entry 0 there


def test_empty_memory_is_identity():
    torch.manual_seed(0)
    blk = BankAttentionBlock(4, dropout=0.0).eval()
    with torch.no_grad():
        blk.norm.bias.fill_(0.5)  # a non-zero tail would show if the block were not skipped
    x = torch.randn(3, 4, 3, 3)
    layout = ClipActorLayout([2, 1], torch.device("cpu"))
    bank, bmask = pad_bank([{"features": torch.randn(2, 4, 3, 3)},
                            {"features": torch.zeros(0, 4, 3, 3)}], x.device, x.dtype)
    out = blk(x, layout, torch.ones(3, 1, 3, 3), bank, bmask)
    assert torch.equal(out[2], x[2])  # clip 1 has no entries
    assert not torch.allclose(out[:2], x[:2])


def _acfb(**kw):
    torch.manual_seed(0)
    return ACFBROIHeads(**COMMON, **SMALL, hr2o_depth=0, bank_layers=2, bank_dropout=0.0, **kw)


def _lfb(**kw):
    torch.manual_seed(0)
    return LFBROIHeads(**COMMON, hidden_dim=8, bank_layers=2, bank_dropout=0.0, **kw)


def _banks(counts, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"features": torch.rand(m, *shape, generator=g).half(),
             "valid_sizes": torch.tensor([list(shape[1:])] * m).reshape(-1, 2),
             "times": torch.zeros(m, dtype=torch.long)} for m in counts]


ACFB_SHAPE = (8, 3, 3)  # hidden 8; 8x8 context -> 6x6 after the 3x3 conv -> 3x3 after 2x2 pool
LFB_SHAPE = (20, 1, 1)


@pytest.mark.parametrize("kind", ["acfb", "lfb"])
def test_shapes_and_batch_equals_one_by_one(kind):
    head = (_acfb() if kind == "acfb" else _lfb()).eval()
    counts, bank_counts = [2, 3, 1], [4, 0, 7]
    feats, boxes = make_features(3), make_boxes(counts)
    banks = _banks(bank_counts, ACFB_SHAPE if kind == "acfb" else LFB_SHAPE)
    logits, losses = head(feats, boxes, [IMAGE] * 3, IMAGE, feature_bank=banks)
    assert logits.shape == (sum(counts), K) and losses == {}
    one = torch.cat([head({k: v[i:i + 1] for k, v in feats.items()}, [boxes[i]], [IMAGE], IMAGE,
                          feature_bank=[banks[i]])[0] for i in range(3)])
    assert torch.allclose(logits, one, atol=1e-5), (logits - one).abs().max()
    # the bank matters: other entries give other logits for clips that have entries
    other = head(feats, boxes, [IMAGE] * 3, IMAGE,
                 feature_bank=_banks(bank_counts, banks[0]["features"].shape[1:], seed=1))[0]
    assert not torch.allclose(other[:2], logits[:2], atol=1e-4)
    assert torch.allclose(other[2:5], logits[2:5], atol=1e-6)  # clip 1: empty memory both times


def test_acfb_without_bank_layers_equals_acar():
    """ACFB with 0 bank blocks and the same weights is the ACAR head (HR2O depth 1)."""
    torch.manual_seed(0)
    acar = ACARROIHeads(**COMMON, **SMALL, hr2o_depth=1).eval()
    acfb = ACFBROIHeads(**COMMON, **SMALL, hr2o_depth=1, bank_layers=0).eval()
    acfb.load_state_dict(acar.state_dict())
    feats, boxes = make_features(2), make_boxes([2, 3])
    a, _ = acar(feats, boxes, [IMAGE] * 2, IMAGE)
    b, _ = acfb(feats, boxes, [IMAGE] * 2, IMAGE, feature_bank=_banks([1, 2], ACFB_SHAPE))
    assert torch.allclose(a, b, atol=1e-6)


def test_bank_entries_are_the_extraction_models_own_maps():
    torch.manual_seed(0)
    acar = ACARROIHeads(**COMMON, **SMALL, hr2o_depth=2).eval()
    seen = {}
    orig = acar.high_order
    acar.high_order = lambda maps, layout, region: seen.setdefault("maps", maps) is None or orig(
        maps, layout, region)
    feats, boxes = make_features(2), make_boxes([2, 3])
    acar(feats, boxes, [IMAGE, (96, 128)], IMAGE)
    entries, sizes = compute_bank_entries(acar, "acfb", feats, boxes, [IMAGE, (96, 128)], IMAGE)
    assert entries.shape == (5, *ACFB_SHAPE)
    assert torch.equal(entries, seen["maps"])
    # valid cells: 8x8 (clip 0) / 6x8 (clip 1, 96 of 128 rows) context -> conv 6x6 / 4x6 -> pool
    assert sizes.tolist() == [[3, 3]] * 2 + [[2, 3]] * 3
    base = BaselineROIHeads(**COMMON).eval()
    lfb_entries, lfb_sizes = compute_bank_entries(base, "lfb", feats, boxes, [IMAGE] * 2, IMAGE)
    pooled, _ = base.pooled_context(feats, IMAGE, [IMAGE] * 2)
    expect = torch.cat([base.roi_features(p, boxes, IMAGE) for p in pooled], dim=1)
    assert lfb_entries.shape == (5, 20, 1, 1) and torch.equal(lfb_entries[:, :, 0, 0], expect)
    assert lfb_sizes.tolist() == [[1, 1]] * 5
    empty, _ = compute_bank_entries(acar, "acfb", feats, make_boxes([0, 0]), [IMAGE] * 2, IMAGE)
    assert empty.shape == (0, *ACFB_SHAPE)
    with pytest.raises(TypeError, match="ACAR / actor-context"):
        compute_bank_entries(base, "acfb", feats, boxes, [IMAGE] * 2, IMAGE)


@pytest.mark.parametrize("kind", ["acfb", "lfb"])
def test_learns_a_bank_only_task(kind):
    """The label of class 2 is 'the window holds an entry with a large first channel': nothing in
    the clip tells it, so the loss can only fall below the prior's through the bank."""
    torch.manual_seed(0)
    head = (_acfb() if kind == "acfb" else _lfb()).train()
    shape = ACFB_SHAPE if kind == "acfb" else LFB_SHAPE
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(3)

    def batch():
        feats = make_features(4, seed=int(torch.randint(0, 10**6, (1,), generator=g)))
        banks, targets = [], []
        for i in range(4):
            f = torch.rand(3, *shape, generator=g) * 0.2
            pos = bool(torch.rand(1, generator=g) < 0.5)
            if pos:
                f[1, 0] += 2.0
            banks.append({"features": f, "valid_sizes": torch.tensor([list(shape[1:])] * 3)})
            t = torch.zeros(2, K)
            t[:, 0] = 1
            t[:, 2] = float(pos)
            targets.append(t)
        return feats, make_boxes([2] * 4, seed=1), banks, torch.cat(targets)

    def bank_loss(logits, t):
        return F.binary_cross_entropy_with_logits(logits[:, 2], t[:, 2]).item()

    losses = []
    for _ in range(80):
        feats, boxes, banks, t = batch()
        logits, loss = head(feats, boxes, [IMAGE] * 4, IMAGE, gt_actions=t, feature_bank=banks)
        opt.zero_grad()
        loss["loss_action"].backward()
        opt.step()
        losses.append(bank_loss(logits.detach(), t))
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first and last < 0.3, (first, last)  # prior (p = 0.5): ln 2 = 0.69


def test_bad_inputs():
    head = _acfb().train()
    feats, boxes = make_features(1), make_boxes([2])
    with pytest.raises(ValueError, match="needs feature_bank in training"):
        head(feats, boxes, [IMAGE], IMAGE)
    head.eval()
    # inference without a bank (a raw video): empty memory = the same head with no bank blocks
    no_bank, _ = head(feats, boxes, [IMAGE], IMAGE)
    empty, _ = head(feats, boxes, [IMAGE], IMAGE, feature_bank=_banks([0], ACFB_SHAPE))
    assert torch.equal(no_bank, empty)
    with pytest.raises(ValueError, match="1 clips but 2 feature banks"):
        head(feats, boxes, [IMAGE], IMAGE, feature_bank=_banks([1, 1], ACFB_SHAPE))
    with pytest.raises(ValueError, match="other head widths, clip size"):
        head(feats, boxes, [IMAGE], IMAGE, feature_bank=_banks([2], (8, 4, 4)))
    with pytest.raises(ValueError, match="expected \\(20, 1, 1\\)"):
        _lfb()(feats, boxes, [IMAGE], IMAGE, feature_bank=_banks([2], ACFB_SHAPE))


def test_registered_and_built_from_yaml():
    for name, cls in (("ACFBROIHeads", ACFBROIHeads), ("LFBROIHeads", LFBROIHeads)):
        assert ROI_HEADS_REGISTRY.get(name) is cls
    cfg = setup_cfg("configs/Synthetic/acfb_SLOWFAST_R18_1.5k_aca_world.yaml",
                    ["MODEL.DEVICE", "cpu"])
    from detectron2.modeling import build_model

    model = build_model(cfg)
    assert isinstance(model.roi_heads, ACFBROIHeads) and len(model.roi_heads.bank_blocks) == 2
    assert len(model.roi_heads.hr2o) == cfg.MODEL.ACTION_HEAD.HR2O_DEPTH
