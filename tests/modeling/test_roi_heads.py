"""
Action ROI heads: loss known answers, training, padding bookkeeping, empty / single-actor clips,
train vs eval, batched vs one-by-one, and the batched ACAR head vs the literal official algorithm.
Tiny widths (slow 16 + fast 4 channels, 8x8 maps of 128 px clips), seeded, CPU.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from detectron2.data import MetadataCatalog
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.structures import Boxes
from detectron2.utils.events import EventStorage

import acar_d2
from acar_d2.engine import setup_cfg
from acar_d2.modeling.roi_heads import (
    ACARROIHeads,
    ActorActorROIHeads,
    ActorContextROIHeads,
    BaselineROIHeads,
    HR2O_REGISTRY,
    action_probabilities,
    pose_softmax_bce_loss,
)
from acar_d2.modeling.roi_heads.layout import valid_feature_size
from acar_d2.utils.testing import literal_acar_logits

K = 5
POSE = [0, 1]
IMAGE = (128, 128)
COMMON = dict(in_features=["slow", "fast"], in_channels=[16, 4], num_classes=K, pose_class_indices=POSE)
SMALL = dict(reduce_dim=8, hidden_dim=8)


def make_features(num_clips: int, seed: int = 0, hw=(8, 8)):
    g = torch.Generator().manual_seed(seed)
    return {
        "slow": torch.randn(num_clips, 16, 2, *hw, generator=g),
        "fast": torch.randn(num_clips, 4, 8, *hw, generator=g),
    }


def make_boxes(counts, seed: int = 0, limit=IMAGE):
    """Random boxes inside the top-left ``limit`` (H, W) region of each clip."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in counts:
        lh, lw = limit
        xy = torch.rand(n, 2, generator=g) * torch.tensor([lw * 0.6, lh * 0.6])
        wh = torch.rand(n, 2, generator=g) * torch.tensor([lw * 0.3, lh * 0.3]) + 4
        out.append(Boxes(torch.cat([xy, xy + wh], dim=1)))
    return out


def make_targets(num: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = (torch.rand(num, K, generator=g) < 0.3).float()
    t[:, POSE] = 0
    t[torch.arange(num), torch.randint(0, len(POSE), (num,), generator=g)] = 1  # one pose each
    return t


def build(name: str, **kw):
    torch.manual_seed(0)
    if name == "baseline":
        return BaselineROIHeads(**COMMON, **kw)
    if name == "actor_actor":
        return ActorActorROIHeads(**COMMON, **SMALL, **kw)
    if name == "actor_context":
        return ActorContextROIHeads(**COMMON, **SMALL, **kw)
    hr2o = kw.pop("hr2o_name", "nl")
    return ACARROIHeads(**COMMON, **SMALL, hr2o_name=hr2o, **kw)


ALL_HEADS = [
    ("baseline", {}),
    ("actor_actor", {}),
    ("actor_context", {}),
    ("acar", {"hr2o_name": "nl"}),
    ("acar", {"hr2o_name": "gattn"}),
    ("acar", {"hr2o_name": "rn"}),
    ("acar", {"hr2o_name": "avg", "hr2o_depth": 1}),
    ("acar", {"hr2o_name": "nl", "hr2o_depth": 3, "hr2o_mlp_1x1": True}),
    ("acar", {"downsample": "none"}),
    ("acar", {"downsample": "4x4"}),
    ("acar", {"downsample": "global"}),
]
IDS = [f"{n}-{'-'.join(f'{v}' for v in kw.values())}" for n, kw in ALL_HEADS]


# ------------------------------------------------------------------------------------------- loss
def test_pose_softmax_loss_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0], [0.5, 1.5, 3.0, -2.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    pose = [0, 1]
    e = math.exp
    p = [
        [e(2) / (e(2) + e(0)), e(0) / (e(2) + e(0)), 1 / (1 + e(1)), 1 / (1 + e(-1))],
        [e(0.5) / (e(0.5) + e(1.5)), e(1.5) / (e(0.5) + e(1.5)), 1 / (1 + e(-3)), 1 / (1 + e(2))],
    ]
    bce = [
        -(t * math.log(q) + (1 - t) * math.log(1 - q))
        for row_p, row_t in zip(p, targets.tolist()) for q, t in zip(row_p, row_t)
    ]
    expected = sum(bce) / len(bce)
    assert torch.allclose(action_probabilities(logits, pose), torch.tensor(p), atol=1e-6)
    got = pose_softmax_bce_loss(logits, targets, pose)
    assert abs(got.item() - expected) < 1e-6, (got.item(), expected)
    # Non-contiguous pose set: the softmax covers exactly those columns.
    probs = action_probabilities(logits, [1, 3])
    assert torch.allclose(probs[:, [1, 3]].sum(1), torch.ones(2))
    assert torch.allclose(probs[:, 0], torch.sigmoid(logits[:, 0]))


def test_loss_rejects_bad_input_and_handles_empty():
    with pytest.raises(ValueError, match="shape"):
        pose_softmax_bce_loss(torch.zeros(2, 4), torch.zeros(2, 3), [0])
    with pytest.raises(ValueError, match="out of range"):
        action_probabilities(torch.zeros(2, 4), [4])
    empty = torch.zeros(0, 4, requires_grad=True)
    loss = pose_softmax_bce_loss(empty, torch.zeros(0, 4), [0, 1])
    loss.backward()
    assert loss.item() == 0.0


def test_pose_classes_from_metadata_or_config():
    cfg = setup_cfg(freeze=False)
    cfg.MODEL.ACTION_HEAD.NUM_CLASSES = K
    cfg.MODEL.ACTION_HEAD.REDUCE_DIM = 8
    cfg.MODEL.ACTION_HEAD.HIDDEN_DIM = 8
    shape = {"slow": ShapeSpec(channels=16, stride=16), "fast": ShapeSpec(channels=4, stride=16)}
    MetadataCatalog.get("_test_roi_heads_pose").set(pose_class_indices=[2, 3])
    cfg.DATASETS.TRAIN = ("_test_roi_heads_pose",)
    head = ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)(cfg, shape)
    assert isinstance(head, ACARROIHeads) and head.pose_class_indices == [2, 3]
    assert head.conv_reduce.in_channels == 20  # from the ShapeSpecs, never a cfg width
    cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES = [0]
    assert ACARROIHeads(cfg, shape).pose_class_indices == [0]
    cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES = []
    cfg.DATASETS.TRAIN = ("_test_roi_heads_no_meta",)
    with pytest.raises(KeyError, match="pose_class_indices"):
        ACARROIHeads(cfg, shape)


def test_parameter_names_match_official():
    head = build("acar", hr2o_depth=2)
    names = {k.rsplit(".", 1)[0] for k in head.state_dict()}
    assert names == {
        "conv_reduce", "conv1", "conv2", "fc1", "fc2",
        *(f"hr2o.{d}.{m}" for d in range(2) for m in ("conv_q", "conv_k", "conv_v", "conv", "norm")),
    }
    assert {k for k in build("baseline").state_dict()} == {"fc.weight"}
    assert set(HR2O_REGISTRY._obj_map) >= {"HR2ONonLocal", "HR2OGraphAttention", "HR2ORelationNetwork", "HR2OAverage"}


# ------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("name,kw", ALL_HEADS, ids=IDS)
def test_each_head_trains(name, kw):
    head = build(name, **dict(kw))
    features = make_features(3)
    boxes = make_boxes([3, 1, 4])
    targets = make_targets(8)
    valid = [IMAGE, (96, 128), (128, 80)]
    opt = torch.optim.Adam(head.parameters(), lr=0.02)
    losses = []
    torch.manual_seed(1)
    for _ in range(25):
        logits, loss_dict = head(features, boxes, valid, IMAGE, gt_actions=targets)
        assert logits.shape == (8, K)
        assert set(loss_dict) == {"loss_action"}
        opt.zero_grad()
        loss_dict["loss_action"].backward()
        opt.step()
        losses.append(loss_dict["loss_action"].item())
    assert losses[-1] < 0.6 * losses[0], losses


# -------------------------------------------------------------------------- padding bookkeeping
def test_valid_feature_size_known_answers():
    # AVA 341x455 frames at stride 16: 22 x 29 cells (official head: boxes x feature w/h); golden case 72x100 -> 5x7.
    assert valid_feature_size((5, 7), (72, 100), (72, 100)) == (5, 7)
    assert valid_feature_size((29, 29), (455, 455), (341, 455)) == (22, 29)
    assert valid_feature_size((8, 8), (128, 128), (96, 65)) == (6, 5)
    assert valid_feature_size((8, 8), (128, 128), (97, 64)) == (7, 4)
    with pytest.raises(ValueError, match="valid_size"):
        valid_feature_size((8, 8), (128, 128), (130, 64))


@pytest.mark.parametrize("name,kw", ALL_HEADS, ids=IDS)
def test_cells_beyond_valid_region_never_matter(name, kw):
    head = build(name, **dict(kw)).eval()
    valid = [(100, 72), (128, 128)]  # clip 0: 7 x 5 valid cells (ceil(8*100/128), ceil(8*72/128))
    features = make_features(2)
    boxes = make_boxes([3, 2], limit=(100, 72))
    base, _ = head(features, boxes, valid, IMAGE)
    changed = {k: v.clone() for k, v in features.items()}
    for v in changed.values():
        v[0, :, :, 7:, :] = 1e3 * torch.randn_like(v[0, :, :, 7:, :])
        v[0, :, :, :, 5:] = -1e3
    out, _ = head(changed, boxes, valid, IMAGE)
    assert torch.allclose(out, base, atol=1e-5), (out - base).abs().max()
    # ...while the last valid row / column does matter (the region is not cut too small).
    for row_or_col in ("row", "col"):
        edge = {k: v.clone() for k, v in features.items()}
        for v in edge.values():
            if row_or_col == "row":
                v[0, :, :, 6, :5] += 5.0
            else:
                v[0, :, :, :7, 4] += 5.0
        out_edge, _ = head(edge, boxes, valid, IMAGE)
        if name != "baseline" and name != "actor_actor":  # they only see inside the boxes
            assert not torch.allclose(out_edge[:3], base[:3], atol=1e-4), row_or_col
        assert torch.allclose(out_edge[3:], base[3:], atol=1e-5)  # the other clip is untouched


@pytest.mark.parametrize("name,kw", ALL_HEADS, ids=IDS)
def test_batch_equals_one_by_one(name, kw):
    head = build(name, **dict(kw)).eval()
    features = make_features(3, seed=3)
    boxes = make_boxes([2, 0, 3], seed=3, limit=(96, 100))
    valid = [(96, 100), (128, 128), (112, 128)]
    together, _ = head(features, boxes, valid, IMAGE)
    alone = [
        head({k: v[i : i + 1] for k, v in features.items()}, [boxes[i]], [valid[i]], IMAGE)[0]
        for i in range(3)
    ]
    assert alone[1].shape == (0, K)
    assert torch.allclose(together, torch.cat(alone), atol=1e-5), (together - torch.cat(alone)).abs().max()


def test_batched_acar_head_equals_literal_official_algorithm():
    head = build("acar", hr2o_depth=2).eval()
    features = make_features(3, seed=5)
    boxes = make_boxes([4, 1, 2], seed=5, limit=(80, 100))
    valid = [(80, 100), (128, 128), (128, 72)]
    ours, _ = head(features, boxes, valid, IMAGE)
    literal = literal_acar_logits(head, features, boxes, valid, IMAGE)
    assert torch.allclose(ours, literal, atol=1e-5), (ours - literal).abs().max()


# ----------------------------------------------------------------- zero / one actor, dropout
@pytest.mark.parametrize("name,kw", ALL_HEADS, ids=IDS)
def test_no_actor_at_all(name, kw):
    head = build(name, **dict(kw))
    features = make_features(2)
    logits, losses = head(features, [Boxes(torch.zeros(0, 4))] * 2, [IMAGE] * 2, IMAGE,
                          gt_actions=torch.zeros(0, K))
    assert logits.shape == (0, K)
    losses["loss_action"].backward()
    assert losses["loss_action"].item() == 0.0


def test_single_actor_nl_attention_is_identity_weight():
    # A lone actor attends only to itself (weight 1): HR2O's aggregation returns its own values.
    block = HR2O_REGISTRY.get("HR2ONonLocal")(channels=4)
    from acar_d2.modeling.roi_heads.layout import ClipActorLayout
    x = torch.randn(3, 4, 3, 3)
    layout = ClipActorLayout([1, 2], x.device)
    virt = block.aggregate(x, layout)
    assert torch.allclose(virt[0], block.conv_v(x[:1])[0], atol=1e-6)
    # the two actors of clip 1 mix only with each other
    v = block.conv_v(x[1:])
    w = (virt[1:] - v[1]) / (v[0] - v[1])  # attention weight on actor 0, per cell
    assert torch.all((w > -1e-3) & (w < 1 + 1e-3))


def test_dropout_only_in_training():
    head = build("acar", hr2o_dropout=0.5)
    features, boxes = make_features(2), make_boxes([3, 2])
    head.eval()
    a, _ = head(features, boxes, [IMAGE] * 2, IMAGE)
    b, _ = head(features, boxes, [IMAGE] * 2, IMAGE)
    assert torch.equal(a, b)
    head.train()
    torch.manual_seed(0)
    c, _ = head(features, boxes, [IMAGE] * 2, IMAGE)
    assert not torch.allclose(a, c, atol=1e-4)
    head_nodrop = build("acar", hr2o_dropout=0.0)
    e_train, _ = head_nodrop.train()(features, boxes, [IMAGE] * 2, IMAGE)
    e_eval, _ = head_nodrop.eval()(features, boxes, [IMAGE] * 2, IMAGE)
    assert torch.equal(e_train, e_eval)  # no BN in the head: only dropout differs


def test_bad_inputs_raise():
    head = build("acar")
    features = make_features(2)
    with pytest.raises(KeyError, match="fast"):
        head({"slow": features["slow"]}, make_boxes([1, 1]), [IMAGE] * 2, IMAGE)
    with pytest.raises(ValueError, match="clips"):
        head(features, make_boxes([1]), [IMAGE], IMAGE)
    with pytest.raises(ValueError, match="feature 'slow'"):
        head({"slow": features["slow"][:, :8], "fast": features["fast"]}, make_boxes([1, 1]), [IMAGE] * 2, IMAGE)
    with pytest.raises(ValueError, match="downsample"):
        build("acar", downsample="3x3")
    with pytest.raises(KeyError, match="nonexistent"):
        build("acar", hr2o_name="nonexistent")
