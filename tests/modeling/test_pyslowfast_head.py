"""
PySlowFastROIHeads against an independent reference of PySlowFast's AVA head (``ResNetRoIHead``),
written here from its published architecture: per pathway AvgPool3d over all T, RoIAlign 7x7 at
scale 1/16 (sampling ratio 0), MaxPool2d 7x7, concatenation [slow, fast], dropout, linear
projection with bias, sigmoid. Weights go through a PySlowFast-format file ({"model_state": ...},
PySlowFast key names) and the project's checkpointer.
"""
import re

import pytest
import torch
from torch import nn
from torchvision.ops import roi_align

from detectron2.modeling import build_model
from detectron2.structures import Boxes

from acar_d2.checkpoint import ACARCheckpointer, CheckpointMismatchError
from tests.testing_utils import tiny_acar_cfg

PROJECTION_ROWS = 8
KEPT = [0, 2, 3, 5, 7]  # the outputs: rows of the projection, as the AVA 80 -> 60 selection


class ReferenceAVAHead(nn.Module):
    """PySlowFast's ResNetRoIHead (AVA): written from the architecture, not from acar_d2."""

    def __init__(self, dims, num_frames, rows, aligned, resolution=7, scale=16):
        super().__init__()
        self.t_pools = nn.ModuleList(nn.AvgPool3d((t, 1, 1), stride=1) for t in num_frames)
        self.s_pool = nn.MaxPool2d(resolution, stride=1)
        self.resolution, self.scale, self.aligned = resolution, 1.0 / scale, aligned
        self.projection = nn.Linear(sum(dims), rows, bias=True)

    def forward(self, pathways, bboxes):
        """pathways: [(N, C_p, T_p, h, w)]; bboxes: (R, 5) rows (batch index, x1, y1, x2, y2)."""
        outs = []
        for x, t_pool in zip(pathways, self.t_pools):
            x = t_pool(x).squeeze(2)
            x = roi_align(x, bboxes, self.resolution, self.scale, 0, self.aligned)
            outs.append(self.s_pool(x))
        x = torch.cat(outs, 1).flatten(1)  # dropout: identity in eval
        return torch.sigmoid(self.projection(x))


def to_pyslowfast(d2_key: str) -> str:
    """acar_d2 backbone key -> PySlowFast ``model_state`` key (inverse of the documented table)."""
    path = {"slow": 0, "fast": 1}
    if m := re.fullmatch(r"(slow|fast)\.stem\.(conv|bn)\.(\w+)", d2_key):
        return f"s1.pathway{path[m[1]]}_stem.{m[2]}.{m[3]}"
    if m := re.fullmatch(r"fuse\.(\w+)\.(conv|bn)\.(\w+)", d2_key):
        k = {"stem": 1, "res2": 2, "res3": 3, "res4": 4}[m[1]]
        return f"s{k}_fuse.{'conv_f2s' if m[2] == 'conv' else 'bn'}.{m[3]}"
    if m := re.fullmatch(r"(slow|fast)\.res(\d)\.(\d+)\.(conv|bn)(\d)\.(\w+)", d2_key):
        branch = "abc"[int(m[5]) - 1]
        return f"s{m[2]}.pathway{path[m[1]]}_res{m[3]}.branch2.{branch}{'_bn' if m[4] == 'bn' else ''}.{m[6]}"
    if m := re.fullmatch(r"(slow|fast)\.res(\d)\.(\d+)\.shortcut(_bn)?\.(\w+)", d2_key):
        return f"s{m[2]}.pathway{path[m[1]]}_res{m[3]}.branch1{m[4] or ''}.{m[5]}"
    raise KeyError(d2_key)


def tiny_cfg(aligned: bool):
    cfg = tiny_acar_cfg(num_classes=len(KEPT))
    cfg.MODEL.ROI_HEADS.NAME = "PySlowFastROIHeads"
    cfg.MODEL.ACTION_HEAD.POSE_SOFTMAX = False
    cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES = []
    cfg.MODEL.ACTION_HEAD.DROPOUT = 0.5
    cfg.MODEL.ACTION_HEAD.POOLER_ALIGNED = aligned
    cfg.MODEL.ACTION_HEAD.PROJECTION_CLASSES = PROJECTION_ROWS
    cfg.MODEL.ACTION_HEAD.PROJECTION_INDICES = KEPT
    return cfg


def pyslowfast_file(model, tmp_path, *, with_head=True, rows=PROJECTION_ROWS):
    """A seeded PySlowFast-format checkpoint of ``model``'s shapes; returns (path, state)."""
    g = torch.Generator().manual_seed(1)
    state = {}
    for k, v in model.backbone.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        value = torch.rand(v.shape, generator=g) + 0.5 if k.endswith("running_var") else torch.randn(v.shape, generator=g) * 0.1
        state[to_pyslowfast(k)] = value
    dim = sum(model.roi_heads.in_channels)
    if with_head:
        state["head.projection.weight"] = torch.randn(rows, dim, generator=g)
        state["head.projection.bias"] = torch.randn(rows, generator=g)
    path = tmp_path / "SLOWFAST_AVA.pyth"
    torch.save({"model_state": state, "epoch": 20, "cfg": "AVA"}, path)
    return path, state


@pytest.mark.parametrize("aligned", [False, True])
def test_head_matches_reference_through_pyslowfast_file(tmp_path, aligned):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(aligned)).eval()
    path, state = pyslowfast_file(model, tmp_path)
    ACARCheckpointer(model, strict=True).load(str(path))
    assert torch.equal(model.backbone.state_dict()["slow.res4.1.conv2.weight"],
                       state["s4.pathway0_res1.branch2.b.weight"])
    heads = model.roi_heads
    dims = heads.in_channels
    ref = ReferenceAVAHead(dims, num_frames=[2, 8], rows=PROJECTION_ROWS, aligned=aligned).eval()
    ref.projection.load_state_dict({"weight": state["head.projection.weight"],
                                    "bias": state["head.projection.bias"]})

    g = torch.Generator().manual_seed(2)
    H, W = 96, 128  # clip size; stride-16 maps are 6 x 8
    features = {"slow": torch.randn(2, dims[0], 2, 6, 8, generator=g),
                "fast": torch.randn(2, dims[1], 8, 6, 8, generator=g)}
    boxes = [Boxes(torch.tensor([[3.0, 5.5, 60.2, 90.0], [40.0, 10.0, 127.0, 70.3]])),
             Boxes(torch.tensor([[0.0, 0.0, 128.0, 96.0]]))]
    with torch.no_grad():
        logits, losses = heads(features, boxes, [(H, W), (H, W)], (H, W))
        scores = heads.inference(logits)
        rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b.tensor], 1)
                          for i, b in enumerate(boxes)])
        expected = ref([features["slow"], features["fast"]], rois)[:, KEPT]
    assert losses == {}
    assert scores.shape == (3, len(KEPT)), scores.shape
    err = (scores - expected).abs().max().item()
    assert err < 1e-5, f"max |acar_d2 - reference| = {err}"


def test_no_boxes_gives_empty_logits():
    heads = build_model(tiny_cfg(False)).roi_heads.eval()
    dims = heads.in_channels
    features = {"slow": torch.randn(1, dims[0], 2, 4, 4), "fast": torch.randn(1, dims[1], 8, 4, 4)}
    logits, _ = heads(features, [Boxes(torch.zeros(0, 4))], [(64, 64)], (64, 64))
    assert logits.shape == (0, len(KEPT)), logits.shape


def test_training_loss_is_bce_of_sigmoids():
    torch.manual_seed(0)
    heads = build_model(tiny_cfg(False)).roi_heads.eval()
    dims = heads.in_channels
    features = {"slow": torch.randn(1, dims[0], 2, 4, 4), "fast": torch.randn(1, dims[1], 8, 4, 4)}
    gt = torch.tensor([[1.0, 0, 0, 1, 0]])
    logits, losses = heads(features, [Boxes(torch.tensor([[2.0, 2, 40, 50]]))], [(64, 64)], (64, 64), gt)
    expected = nn.functional.binary_cross_entropy(torch.sigmoid(logits), gt)
    assert torch.allclose(losses["loss_action"], expected, atol=1e-6), (losses, expected)


def test_missing_or_kinetics_head_is_a_clear_error(tmp_path):
    model = build_model(tiny_cfg(False)).eval()
    path, _ = pyslowfast_file(model, tmp_path, with_head=False)
    with pytest.raises(CheckpointMismatchError, match=r"missing.*roi_heads\.projection\.weight"):
        ACARCheckpointer(model, strict=True).load(str(path))
    # A Kinetics classifier (400 rows) is not an AVA head: shape mismatch, named.
    path, _ = pyslowfast_file(model, tmp_path, rows=400)
    with pytest.raises(CheckpointMismatchError, match=r"roi_heads\.projection\.weight \(400"):
        ACARCheckpointer(model, strict=True).load(str(path))


def test_bad_projection_indices_raise():
    cfg = tiny_cfg(False)
    cfg.MODEL.ACTION_HEAD.PROJECTION_INDICES = [0, 1, 2, 3, 8]
    with pytest.raises(ValueError, match="projection_indices"):
        build_model(cfg)
