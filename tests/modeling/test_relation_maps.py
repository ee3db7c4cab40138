"""
Relation maps (ACAR Fig. 6; ``acar_d2/modeling/relation_maps.py``): a hand-built attention pattern
lands its peak on the known cell and pixel and picks the known actor; maps sum to 1 on each clip's
valid cells (padded batch = one by one); nothing is recorded and the outputs are identical when
recording is off; the JSON form round-trips; unsupported operators are refused by name. CPU, tiny,
seeded.
"""
import math

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from acar_d2.modeling import RelationMap, RelationRecorder
from acar_d2.modeling.relation_maps import (_clip_relations, chance_rate, interaction_actor,
                                            relation_grid)
from acar_d2.modeling.roi_heads import ACARROIHeads
from acar_d2.modeling.roi_heads.hr2o import HR2ONonLocal
from acar_d2.modeling.roi_heads.layout import ClipActorLayout, ValidRegion
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

    mask = ValidRegion(torch.tensor([[6, 6]] * 3), (6, 6)).mask()
    ((context_maps, actor_weights),) = _clip_relations(attn, layout, mask)
    assert context_maps.shape == (3, 6, 6) and actor_weights.shape == (3, 3)
    assert torch.allclose(context_maps.sum(dim=(1, 2)), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(actor_weights.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert int(context_maps[0].argmax()) == 2 * 6 + 4
    assert int(actor_weights[0].argmax()) == 1
    # actor 2 has a zero query: uniform over actors at every cell -> a flat map, weights 1/3
    assert torch.allclose(context_maps[2], torch.full((6, 6), 1 / 36, dtype=torch.float64))
    assert torch.allclose(actor_weights[2], torch.full((3,), 1 / 3, dtype=torch.float64))

    # On a 96x128 clip whose 8x8 context cells are 12x16 px, downsample "none": relation cell
    # (r, c) is centred on context cell (r + 1, c + 1); the output frame is twice the clip, so a
    # context cell is 32x24 output px.
    grid = relation_grid("none", (32.0, 24.0))
    rm = RelationMap(0, context_maps[0].numpy(), actor_weights[0].numpy(), grid, (192, 256))
    # cell (2, 4): x = (4 + 1.5) * 16 * 2 = 176, y = (2 + 1.5) * 12 * 2 = 84
    assert rm.peak_cell == (2, 4) and rm.peak_xy == pytest.approx((176.0, 84.0))
    assert rm.heatmap.shape == (192, 256) and rm.heatmap.sum() == pytest.approx(1.0)
    # the interpolated heat map peaks at the pixels around that point (pixel centres +0.5)
    row, col = np.unravel_index(rm.heatmap.argmax(), rm.heatmap.shape)
    assert abs(col + 0.5 - 176) <= 0.5 and abs(row + 0.5 - 84) <= 0.5, (row, col)
    assert int(np.argmax(rm.actor_weights)) == 1
    assert rm.peak_in_box((170, 80, 180, 90))
    assert not rm.peak_in_box((0, 0, 170, 192))

    # the JSON form (the demo's "relation") and back
    doc = rm.to_json()
    assert doc["grid_size"] == [6, 6] and doc["grid_origin_xy"] == [48.0, 36.0]
    assert doc["grid_step_xy"] == [32.0, 24.0] and doc["peak_xy"] == [176.0, 84.0]
    back = RelationMap.from_json(doc, 0, (192, 256))
    assert back.peak_xy == rm.peak_xy and back.grid == rm.grid
    assert np.allclose(back.context_map, rm.context_map, atol=1e-6)
    assert np.allclose(back.actor_weights, rm.actor_weights, atol=1e-6)
    with pytest.raises(ValueError, match="actor 3: context_map is \\[6, 6\\], grid_size says \\[5, 6\\]"):
        RelationMap.from_json(dict(doc, grid_size=[5, 6]), 3, (192, 256))


def padded_heads(**kw):
    torch.manual_seed(0)
    return ACARROIHeads(**COMMON, **SMALL, **{"hr2o_depth": 2, **kw}).eval()


def test_padded_batch_maps_live_on_each_valid_region_and_equal_one_by_one():
    heads = padded_heads(downsample="none")
    feats = make_features(2)
    boxes = make_boxes([3, 2], limit=(64, 96))
    valid = [(128, 128), (64, 96)]  # second clip: 4x6 context cells -> 2x4 relation cells
    with torch.no_grad(), RelationRecorder(heads) as rec:
        logits, _ = heads(feats, boxes, valid, (128, 128))
        batch = list(rec.maps)
        rec.maps.clear()
        for n in range(2):
            one = {k: v[n:n + 1] for k, v in feats.items()}
            heads(one, boxes[n:n + 1], valid[n:n + 1], (128, 128))
        alone = rec.maps
    assert [[m.context_map.shape for m in clip] for clip in batch] == [[(6, 6)] * 3, [(2, 4)] * 2]
    assert [[m.actor_weights.shape for m in clip] for clip in batch] == [[(3,)] * 3, [(2,)] * 2]
    for clip_maps, one in zip(batch, alone):
        for m, m1 in zip(clip_maps, one):
            # every map sums to 1 on its valid cells: no mass outside the valid region
            assert m.context_map.sum() == pytest.approx(1.0) and m.actor_weights.sum() == pytest.approx(1.0)
            assert (m.context_map >= 0).all()
            assert np.allclose(m.context_map, m1.context_map, atol=1e-6)
            assert np.allclose(m.actor_weights, m1.actor_weights, atol=1e-6)
            # bare heads: clip px; 16 px context cells, cell (0, 0) at 1.5 cells
            assert m.grid == (24.0, 24.0, 16.0, 16.0) and m.image_size == (128, 128)
    heads(feats, boxes, valid, (128, 128))
    assert len(alone) == 2  # off again after the block: nothing more recorded
    assert not heads._forward_hooks and not heads._forward_pre_hooks


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
        with RelationRecorder(model) as rec:
            recorded = model(batch)
        assert len(calls) == 2 + 4  # + one recording per size group
        again = model(batch)
        assert len(calls) == 6 + 2
    del last.attention
    base = {"pred_boxes", "scores", "action_logits", "action_scores"}
    for p, r, a in zip(plain, recorded, again):
        p, r, a = p["instances"], r["instances"], a["instances"]
        assert set(p.get_fields()) == set(r.get_fields()) == set(a.get_fields()) == base
        assert torch.equal(p.action_logits, r.action_logits)
        assert torch.equal(p.action_logits, a.action_logits)
    # one list per output, in input order (the 96x128 clip ran in a group of its own, after)
    assert [len(m) for m in rec.maps] == [2, 0, 3]
    # 128x96 valid -> 8x6 context cells -> 6x4 relation cells; 3x4 in the 96x128 clip
    assert [m.context_map.shape for m in rec.maps[0]] == [(6, 4)] * 2
    assert [m.context_map.shape for m in rec.maps[2]] == [(4, 6)] * 3
    # grid: 16 px context cells, x2 output scale: centre of cell (0, 0) at 1.5 * 32 = 48 px
    assert rec.maps[0][1].grid == (48.0, 48.0, 32.0, 32.0)
    assert rec.maps[2][0].grid == (24.0, 24.0, 16.0, 16.0)
    rm = rec.maps[0][1]
    assert rm.actor_index == 1 and rm.image_size == (256, 192)
    assert rm.heatmap.shape == (256, 192) and rm.actor_weights.shape == (2,)


def test_unsupported_heads_are_refused_by_name():
    with pytest.raises(NotImplementedError, match="HR2ORelationNetwork"):
        RelationRecorder(padded_heads(hr2o_name="rn"))
    with pytest.raises(NotImplementedError, match="global"):
        RelationRecorder(padded_heads(downsample="global"))
    with pytest.raises(ValueError, match="HR2O_DEPTH"):
        RelationRecorder(padded_heads(hr2o_depth=0))
    # avg: uniform weights, a flat map (its natural analogue)
    heads = padded_heads(hr2o_name="avg", downsample="none")
    with torch.no_grad(), RelationRecorder(heads) as rec:
        heads(make_features(1), make_boxes([3]), [(128, 128)], (128, 128))
    ((a, b, c),) = rec.maps
    for m in (a, b, c):
        assert np.allclose(m.actor_weights, 1 / 3) and np.allclose(m.context_map, 1 / 36)


def test_a_lone_actor_gets_a_uniform_map():
    heads = padded_heads(downsample="none")
    with torch.no_grad(), RelationRecorder(heads) as rec:
        heads(make_features(1), make_boxes([1]), [(128, 128)], (128, 128))
    ((m,),) = rec.maps
    assert np.array_equal(m.actor_weights, [1.0])
    assert m.context_map.shape == (6, 6) and np.allclose(m.context_map, 1 / 36)


def test_chance_rate_and_interaction_actor():
    assert chance_rate((0, 0, 50, 40), (100, 200)) == pytest.approx(50 * 40 / 20000)
    assert chance_rate((-10, -10, 20, 20), (100, 200)) == pytest.approx(400 / 20000)  # clipped
    assert chance_rate((300, 0, 400, 10), (100, 200)) == 0.0
    scores = np.array([[0.9, 0.1, 0.2, 0.3], [0.1, 0.9, 0.6, 0.1]])
    assert interaction_actor(scores, [0, 1]) == 1  # class 2 at 0.6 beats class 3 at 0.3
    assert interaction_actor(scores, [0, 1, 2, 3]) == 0  # all poses: all classes
    assert interaction_actor(np.zeros((0, 4)), [0]) is None
