"""
Parity with the official ACAR-Net (golden case ``public_r50_depth2``, FORMATS.md (iv)).

* model level: ``build_model`` from configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml, the seeded official
  checkpoint loaded through ``ACARCheckpointer`` via ``MODEL.WEIGHTS``, the public
  ``model(batched_inputs)`` in eval mode -> logits / scores / loss;
* head level: the ACAR head alone on the recorded backbone features -> every recorded
  intermediate (context, actor features, high-order features, logits).

Tolerance atol = rtol = 1e-4 (FORMATS.md; observed noise <= 2.3e-6, plausible bugs >= 2.3e-3).
"""
import torch
import pytest

import acar_d2
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from acar_d2.checkpoint import ACARCheckpointer
from acar_d2.modeling.roi_heads import ACARROIHeads, pose_softmax_bce_loss
from tests.reference_utils import (
    REPO_ROOT,
    load_golden_case,
)

ATOL = RTOL = 1e-4
# Official class order (FORMATS.md (iii)): the 13 evaluated AVA pose classes are indices 0..12.
POSE = list(range(13))


@pytest.fixture(scope="module")
def golden():
    return load_golden_case()


def _clip_boxes(inputs, clip_index: int) -> Boxes:
    """Official rois [b, x1, y1, x2, y2] normalized to the padded frame -> clip px boxes."""
    rois = inputs["rois"]
    H, W = inputs["clips"].shape[-2:]
    sel = rois[rois[:, 0] == clip_index, 1:]
    return Boxes(sel * torch.tensor([W, H, W, H], dtype=sel.dtype))


def _batched_inputs(inputs):
    clips = inputs["clips"]
    H, W = clips.shape[-2:]
    batched = []
    for b in range(clips.shape[0]):
        # sizes_before_padding is [w_ratio, h_ratio] (width first, FORMATS.md (iii)).
        w_ratio, h_ratio = inputs["sizes_before_padding"][b]
        valid = (round(H * h_ratio), round(W * w_ratio))
        proposals = Instances((H, W))
        proposals.proposal_boxes = _clip_boxes(inputs, b)
        proposals.scores = torch.ones(len(proposals))
        batched.append(
            {"clip": clips[b], "valid_size": valid, "height": valid[0], "width": valid[1],
             "proposals": proposals}
        )
    return batched


def _report(name, got, ref):
    err = (got - ref).abs().max().item()
    print(f"{name}: max abs err {err:.3e}")
    assert torch.allclose(got, ref, atol=ATOL, rtol=RTOL), f"{name}: max abs err {err}"


def test_model_parity_with_official(golden, tmp_path):
    state, inputs, outputs = golden
    weights = tmp_path / "AVA_SLOWFAST_R50_ACAR_HR2O_golden.pth.tar"
    torch.save(state, weights)

    cfg = get_cfg()
    acar_d2.add_acar_config(cfg)
    cfg.merge_from_file(str(REPO_ROOT / "configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = str(weights)
    # The golden case's dataset is not registered: give the official pose set explicitly.
    cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES = POSE
    model = build_model(cfg)
    ACARCheckpointer(model, strict=True).load(cfg.MODEL.WEIGHTS)
    model.eval()

    with torch.no_grad():
        results = model(_batched_inputs(inputs))
    inst = results[0]["instances"]
    _report("logits", inst.action_logits, outputs["logits"])
    _report("scores", inst.action_scores, outputs["scores"])
    # Boxes come back in the original frame: the unpadded boxes x (W, H).
    H, W = inputs["clips"].shape[-2:]
    _report("boxes", inst.pred_boxes.tensor,
            inputs["boxes_unpadded"] * torch.tensor([W, H, W, H], dtype=torch.float32))
    loss = pose_softmax_bce_loss(inst.action_logits, inputs["targets"], POSE)
    _report("loss", loss, outputs["loss"])


def test_head_parity_with_official(golden):
    state, inputs, outputs = golden
    prefix = "module.head.module."
    head_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    head = ACARROIHeads(
        in_features=["slow", "fast"], in_channels=[2048, 256], num_classes=60,
        pose_class_indices=POSE, hr2o_depth=2,
    )
    # strict: the head's parameter names are exactly the official ones.
    head.load_state_dict(head_state, strict=True)
    head.eval()
    features = {"slow": outputs["slow_features"], "fast": outputs["fast_features"]}
    H, W = inputs["clips"].shape[-2:]
    boxes = [_clip_boxes(inputs, 0)]
    with torch.no_grad():
        context, crop = head.reduce_context(features, (H, W), [(H, W)])
        actor = head.roi_features(context, boxes, (H, W))
        high_order = head.relation_features(context, actor, boxes, crop)
        logits, losses = head(features, boxes, [(H, W)], (H, W), gt_actions=inputs["targets"])
    _report("context_features_reduced", context, outputs["context_features_reduced"])
    _report("roi_features", actor, outputs["roi_features"])
    _report("high_order_features", high_order, outputs["high_order_features"])
    _report("logits", logits, outputs["logits"])
    _report("scores", head.inference(logits), outputs["scores"])
    _report("loss", losses["loss_action"], outputs["loss"])
    assert crop == [(5, 7)]  # case.json context_crop_hw_per_clip
