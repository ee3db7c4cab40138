"""
Relation maps (ACAR Fig. 6; ``roi_heads/relation_maps.py``, ``utils/relations.py``): a hand-built
attention pattern lands its peak on the known cell and pixel and picks the known actor; maps sum
to 1 on each clip's valid cells (padded batch = one by one); nothing is recorded and the outputs
are identical when recording is off; unsupported operators are refused by name. CPU, tiny, seeded.
"""
import math

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from acar_d2.modeling.roi_heads import ACARROIHeads, record_relations
from acar_d2.modeling.roi_heads.hr2o import HR2ONonLocal
from acar_d2.modeling.roi_heads.layout import ClipActorLayout, ValidRegion
from acar_d2.modeling.roi_heads.relation_maps import add_relation_fields, relation_records
from acar_d2.utils.relations import (attention_peak_in_box, chance_rate, interaction_actor,
                                     relation_map)
from tests.modeling.test_roi_heads import COMMON, SMALL, make_boxes, make_features
from tests.testing_utils import tiny_acar_cfg


def hand_built_nl(channels: int = 4) -> HR2ONonLocal:
    """q = channel 0, k = channel 1 of the input (3x3 kernels with only the centre tap)."""
    block = HR2ONonLocal(channels=channels).eval()
    for conv in (block.conv_q, block.conv_k, block.conv_v):
        conv.weight.data.zero_()
    block.conv_q.weight.data[0, 0, 1, 1] = 1.0
    block.conv_k.weight.data[0, 1, 1, 1] = 1.0
    return block


def test_hand_built_nl_attention_peaks_at_the_known_cell_and_actor():
    """3 actors on a 6x6 grid: actor 0's query (channel 0) meets actor 1's key (channel 1) a little
    everywhere and strongly at cell (row 2, col 4); actor 2's key is zero."""
    block = hand_built_nl()
    x = torch.zeros(3, 4, 6, 6)
    x[0, 0] = 1.0
    x[1, 1] = 1.0
    x[1, 1, 2, 4] = 12.0
    layout = ClipActorLayout([3], x.device)
    attn = block.attention(x, layout)  # (1, 3, 3, 6, 6)
    assert attn.shape == (1, 3, 3, 6, 6)
    assert torch.allclose(attn.sum(dim=2), torch.ones(1, 3, 6, 6))  # softmax over actors j
    # a_01 at the peak: exp(12 / 2) / (exp(6) + 2)
    assert attn[0, 0, 1, 2, 4].item() == pytest.approx(math.exp(6) / (math.exp(6) + 2), rel=1e-5)

    region = ValidRegion(torch.tensor([[6, 6]] * 3), (6, 6))
    (rec,) = relation_records(attn, layout, region, "none")
    assert rec.context_maps.shape == (3, 6, 6) and rec.actor_weights.shape == (3, 3)
    assert torch.allclose(rec.context_maps.sum(dim=(1, 2)), torch.ones(3))
    assert torch.allclose(rec.actor_weights.sum(dim=1), torch.ones(3))
    assert int(rec.context_maps[0].argmax()) == 2 * 6 + 4
    assert int(rec.actor_weights[0].argmax()) == 1
    # actor 2 has a zero query: uniform over actors at every cell -> a flat map, weights 1/3
    assert torch.allclose(rec.context_maps[2], torch.full((6, 6), 1 / 36))
    assert torch.allclose(rec.actor_weights[2], torch.full((3,), 1 / 3))

    # On a 96x128 clip whose 8x8 context cells are 12x16 px, downsample "none": relation cell
    # (r, c) is centred on context cell (r + 1, c + 1); the output frame is twice the clip.
    inst = Instances((192, 256))
    inst.pred_boxes = Boxes(torch.tensor([[0, 0, 10, 10]] * 3, dtype=torch.float32))
    add_relation_fields(inst, rec.in_pixels((16.0, 12.0)), (2.0, 2.0))
    rm = relation_map(inst, 0)
    # cell (2, 4): x = (4 + 1.5) * 16 * 2 = 176, y = (2 + 1.5) * 12 * 2 = 84
    assert rm.peak_cell == (2, 4) and rm.peak_xy == pytest.approx((176.0, 84.0))
    assert rm.heatmap.shape == (192, 256) and rm.heatmap.sum() == pytest.approx(1.0)
    # the interpolated heat map peaks at the pixels around that point (pixel centres +0.5)
    row, col = np.unravel_index(rm.heatmap.argmax(), rm.heatmap.shape)
    assert abs(col + 0.5 - 176) <= 0.5 and abs(row + 0.5 - 84) <= 0.5, (row, col)
    assert int(np.argmax(rm.actor_weights)) == 1
    assert attention_peak_in_box(rm, (170, 80, 180, 90))
    assert not attention_peak_in_box(rm, (0, 0, 170, 192))
    # a half-size image: same cell, half the pixels
    assert relation_map(inst, 0, (96, 128)).peak_xy == pytest.approx((88.0, 42.0))


def padded_heads(**kw):
    torch.manual_seed(0)
    return ACARROIHeads(**COMMON, **SMALL, **{"hr2o_depth": 2, **kw}).eval()


def test_padded_batch_maps_live_on_each_valid_region_and_equal_one_by_one():
    heads = padded_heads(downsample="none")
    feats = make_features(2)
    boxes = make_boxes([3, 2], limit=(64, 96))
    valid = [(128, 128), (64, 96)]  # second clip: 4x6 context cells -> 2x4 relation cells
    with torch.no_grad(), record_relations(heads):
        logits, _ = heads(feats, boxes, valid, (128, 128))
        batch = list(heads.relation_records)
        heads.relation_records.clear()
        alone = []
        for n in range(2):
            one = {k: v[n:n + 1] for k, v in feats.items()}
            heads(one, boxes[n:n + 1], valid[n:n + 1], (128, 128))
            alone += list(heads.relation_records)
            heads.relation_records.clear()
    assert [tuple(r.context_maps.shape) for r in batch] == [(3, 6, 6), (2, 2, 4)]
    assert [tuple(r.actor_weights.shape) for r in batch] == [(3, 3), (2, 2)]
    for rec, one in zip(batch, alone):
        # every map sums to 1 on its valid cells: no mass outside the valid region
        assert torch.allclose(rec.context_maps.sum(dim=(1, 2)), torch.ones(len(rec.context_maps)))
        assert torch.allclose(rec.actor_weights.sum(dim=1), torch.ones(len(rec.actor_weights)))
        assert (rec.context_maps >= 0).all()
        assert torch.allclose(rec.context_maps, one.context_maps, atol=1e-6)
        assert torch.allclose(rec.actor_weights, one.actor_weights, atol=1e-6)
    assert heads.relation_records is None  # off again after the block


def recorded_model(downsample="2x2"):
    cfg = tiny_acar_cfg(num_classes=4)
    cfg.MODEL.ACTION_HEAD.DOWNSAMPLE = downsample
    torch.manual_seed(0)
    return build_model(cfg).eval()


def clip(seed, hw, valid, boxes, height, width):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(3, 4, *hw)
    x[:, :, : valid[0], : valid[1]] = torch.randn(3, 4, *valid, generator=g)
    props = Instances(hw)
    props.proposal_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    props.scores = torch.ones(len(props))
    return {"clip": x, "valid_size": valid, "height": height, "width": width, "proposals": props}


def test_model_records_only_when_asked_and_outputs_do_not_change():
    model = recorded_model("none")
    batch = [clip(0, (128, 128), (128, 96), [[4, 8, 60, 120], [50, 10, 90, 100]], 256, 192),
             clip(1, (128, 128), (128, 128), [], 128, 128),
             clip(2, (96, 128), (96, 128), [[10, 5, 60, 90], [70, 20, 120, 90], [5, 5, 30, 30]],
                  96, 128)]
    calls = []
    last = model.roi_heads.hr2o[-1]
    original = last.attention
    last.attention = lambda *a: calls.append(1) or original(*a)
    with torch.no_grad():
        plain = model(batch)
        assert len(calls) == 2  # the forward's own, once per size group: nothing extra when off
        with record_relations(model):
            recorded = model(batch)
        assert len(calls) == 2 + 4  # + one recording per size group
        again = model(batch)
        assert len(calls) == 6 + 2
    del last.attention
    base = {"pred_boxes", "scores", "action_logits", "action_scores"}
    extra = {"relation_context_maps", "relation_actor_weights", "relation_grid"}
    for p, r, a in zip(plain, recorded, again):
        p, r, a = p["instances"], r["instances"], a["instances"]
        assert set(p.get_fields()) == set(a.get_fields()) == base
        assert set(r.get_fields()) == base | extra
        assert torch.equal(p.action_logits, r.action_logits)
        assert torch.equal(p.action_logits, a.action_logits)
    r0 = recorded[0]["instances"]
    # 128x96 valid -> 8x6 context cells -> 6x4 relation cells; 3x4 in the 96x128 clip
    assert r0.relation_context_maps.shape == (2, 6, 4)
    assert recorded[2]["instances"].relation_context_maps.shape == (3, 4, 6)
    assert len(recorded[1]["instances"]) == 0
    # grid: 16 px context cells, x2 output scale: centre of cell (0, 0) at 1.5 * 32 = 48 px
    assert torch.allclose(r0.relation_grid, torch.tensor([[48.0, 48.0, 32.0, 32.0]] * 2))
    rm = relation_map(r0, 1)
    assert rm.heatmap.shape == (256, 192) and rm.actor_weights.shape == (2,)


def test_unsupported_heads_are_refused_by_name():
    with pytest.raises(NotImplementedError, match="HR2ORelationNetwork"):
        with record_relations(padded_heads(hr2o_name="rn")):
            pass
    with pytest.raises(NotImplementedError, match="global"):
        with record_relations(padded_heads(downsample="global")):
            pass
    with pytest.raises(ValueError, match="HR2O_DEPTH"):
        with record_relations(padded_heads(hr2o_depth=0)):
            pass
    # avg: uniform weights, a flat map (its natural analogue)
    heads = padded_heads(hr2o_name="avg", downsample="none")
    with torch.no_grad(), record_relations(heads):
        heads(make_features(1), make_boxes([3]), [(128, 128)], (128, 128))
        (rec,) = heads.relation_records
    assert torch.allclose(rec.actor_weights, torch.full((3, 3), 1 / 3))
    assert torch.allclose(rec.context_maps, torch.full((3, 6, 6), 1 / 36))


def test_a_lone_actor_gets_a_uniform_map():
    heads = padded_heads(downsample="none")
    with torch.no_grad(), record_relations(heads):
        heads(make_features(1), make_boxes([1]), [(128, 128)], (128, 128))
        (rec,) = heads.relation_records
    assert torch.allclose(rec.actor_weights, torch.ones(1, 1))
    assert torch.allclose(rec.context_maps, torch.full((1, 6, 6), 1 / 36))


def test_chance_rate_and_interaction_actor():
    assert chance_rate((0, 0, 50, 40), (100, 200)) == pytest.approx(50 * 40 / 20000)
    assert chance_rate((-10, -10, 20, 20), (100, 200)) == pytest.approx(400 / 20000)  # clipped
    assert chance_rate((300, 0, 400, 10), (100, 200)) == 0.0
    scores = np.array([[0.9, 0.1, 0.2, 0.3], [0.1, 0.9, 0.6, 0.1]])
    assert interaction_actor(scores, [0, 1]) == 1  # class 2 at 0.6 beats class 3 at 0.3
    assert interaction_actor(scores, [0, 1, 2, 3]) == 0  # all poses: all classes
    assert interaction_actor(np.zeros((0, 4)), [0]) is None
