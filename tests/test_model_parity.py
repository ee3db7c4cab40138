"""
Parity with the official ACAR-Net (golden cases in ``tests/golden/acar_official``, see its README).

* ``public_r50_depth2`` (one 72x100 clip, 3 actors):
  - model level: ``build_model`` from configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml, the seeded official
    checkpoint loaded through ``ACARCheckpointer`` via ``MODEL.WEIGHTS``, the public
    ``model(batched_inputs)`` in eval mode -> logits / scores / loss / actor and high-order
    features;
  - head level: the ACAR head alone on the recorded backbone features -> every recorded
    intermediate (context, actor features, high-order features, logits).
* ``public_r50_depth2_batch2_padded`` (clips of 80x60 and 56x60, the second zero-padded to 80x60
  at the bottom, 2 + 3 actors): the same model on the batch of both padded clips with their
  ``valid_size`` -> logits / scores / loss / actor and high-order features; and the literal
  official head (``acar_d2.utils.testing``) on the model's backbone features -> the same tensors.

Tolerance atol = rtol = 1e-4 (observed noise <= 2.3e-6, plausible bugs >= 2.3e-3).
"""
import json

import pytest
import torch

import acar_d2
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from acar_d2.checkpoint import ACARCheckpointer
from acar_d2.modeling.roi_heads import ACARROIHeads, pose_softmax_bce_loss
from acar_d2.utils.testing import literal_acar_outputs
from tests.reference_utils import (
    REPO_ROOT,
    golden_case_dir,
    load_golden_case,
)

ATOL = RTOL = 1e-4
# Official class order (docs/CHECKPOINTS.md): the 13 evaluated AVA pose classes are indices 0..12.
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
        # sizes_before_padding is [w_ratio, h_ratio] (width first, as in the official loader).
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


def _max_err(got, ref) -> float:
    return (got - ref).abs().max().item() if got.numel() else 0.0


def _report(name, got, ref):
    assert got.shape == ref.shape, (name, tuple(got.shape), tuple(ref.shape))
    err = _max_err(got, ref)
    print(f"{name}: max abs err {err:.3e}")
    assert torch.allclose(got, ref, atol=ATOL, rtol=RTOL), f"{name}: max abs err {err}"


def _golden_model(state, weights_path):
    """The official R50 ACAR config, the seeded official checkpoint loaded strictly, eval mode."""
    torch.save(state, weights_path)
    cfg = get_cfg()
    acar_d2.add_acar_config(cfg)
    cfg.merge_from_file(str(REPO_ROOT / "configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = str(weights_path)
    # The golden case's dataset is not registered: give the official pose set explicitly.
    cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES = POSE
    model = build_model(cfg)
    ACARCheckpointer(model, strict=True).load(cfg.MODEL.WEIGHTS)
    return model.eval()


def _run_capturing(model, batched):
    """
    ``model(batched)`` plus the head's inputs to its classifier, taken from the official layer
    names: ``fc1`` reads the actor (RoI) features, ``fc2`` reads [ReLU(fc1(actor)), high-order
    features]. Also the backbone features.
    """
    captured = {}
    head = model.roi_heads

    def grab(name, fn):
        def hook(module, args, *rest):
            captured[name] = fn(module, args, *rest)
        return hook

    hooks = [
        head.fc1.register_forward_pre_hook(grab("roi_features", lambda m, a: a[0].detach().clone())),
        head.fc2.register_forward_pre_hook(
            grab("high_order_features", lambda m, a: a[0][:, head.fc1.out_features:].detach().clone())
        ),
        model.backbone.register_forward_hook(
            grab("backbone", lambda m, a, out: {k: v.detach().clone() for k, v in out.items()})
        ),
    ]
    try:
        with torch.no_grad():
            results = model(batched)
    finally:
        for h in hooks:
            h.remove()
    return results, captured


def test_model_parity_with_official(golden, tmp_path):
    state, inputs, outputs = golden
    model = _golden_model(state, tmp_path / "AVA_SLOWFAST_R50_ACAR_HR2O_golden.pth.tar")
    results, captured = _run_capturing(model, _batched_inputs(inputs))
    inst = results[0]["instances"]
    _report("logits", inst.action_logits, outputs["logits"])
    _report("scores", inst.action_scores, outputs["scores"])
    _report("roi_features", captured["roi_features"], outputs["roi_features"])
    _report("high_order_features", captured["high_order_features"], outputs["high_order_features"])
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


# ----------------------------------------------------------------- padded batch of two clips
PADDED = "public_r50_depth2_batch2_padded"


@pytest.fixture(scope="module")
def padded_run(tmp_path_factory):
    """The golden padded case run once through the model: (inputs, outputs, results, captured)."""
    state, inputs, outputs = load_golden_case(PADDED)
    case = json.loads((golden_case_dir(PADDED) / "case.json").read_text())
    clips = inputs["clips"]
    H, W = clips.shape[-2:]
    assert (H, W) == (80, 60) and clips.shape[0] == 2
    batched = _batched_inputs(inputs)
    # Valid sizes from sizes_before_padding agree with the recorded clip sizes: 80x60, 56x60.
    assert [x["valid_size"] for x in batched] == [
        tuple(hw) for hw in inputs["clip_sizes_before_padding_hw"]] == [(80, 60), (56, 60)]
    # The second clip is stored zero-padded below row 56.
    assert clips[1, :, :, 56:].abs().max().item() == 0.0
    model = _golden_model(state, tmp_path_factory.mktemp("padded") / "golden_padded.pth.tar")
    results, captured = _run_capturing(model, batched)
    return model, case, inputs, outputs, results, captured


def _per_clip_report(name, got, ref, counts):
    """Max abs error per clip (rows in clip-major order), printed; then the whole-tensor check."""
    errs = [_max_err(g, r) for g, r in zip(got.split(counts), ref.split(counts))]
    print(f"{name}: max abs err per clip {['%.3e' % e for e in errs]}")
    return errs


def test_padded_batch_parity_with_official(padded_run):
    model, case, inputs, outputs, results, captured = padded_run
    counts = [len(r["instances"]) for r in results]
    assert counts == [2, 3], counts
    logits = torch.cat([r["instances"].action_logits for r in results])
    scores = torch.cat([r["instances"].action_scores for r in results])
    loss = pose_softmax_bce_loss(logits, inputs["targets"], POSE)
    got = {
        "logits": logits,
        "scores": scores,
        "roi_features": captured["roi_features"],
        "high_order_features": captured["high_order_features"],
    }
    # The unpadded first clip must match whatever happens to the padded one.
    for name, value in got.items():
        errs = _per_clip_report(name, value, outputs[name], counts)
        assert errs[0] <= ATOL, f"{name}: unpadded clip 0 differs by {errs[0]}"
    # Boxes come back in each clip's own (unpadded) frame.
    for b, r in enumerate(results):
        vh, vw = inputs["clip_sizes_before_padding_hw"][b]
        rows = inputs["rois"][:, 0] == b
        ref = inputs["boxes_unpadded"][rows] * torch.tensor([vw, vh, vw, vh], dtype=torch.float32)
        _report(f"boxes clip {b}", r["instances"].pred_boxes.tensor, ref)
    for name, value in got.items():
        _report(name, value, outputs[name])
    _report("loss", loss, outputs["loss"])


def test_literal_official_head_reproduces_padded_case(padded_run):
    """
    The literal reference of ``acar_d2.utils.testing`` (RoIAlign on the padded map, context crop
    ceil(h * H_valid / H) x ceil(w * W_valid / W)) on the model's backbone features reproduces the
    official outputs of the padded batch: the reference the batched head is tested against.
    """
    model, case, inputs, outputs, results, captured = padded_run
    features = captured["backbone"]
    H, W = inputs["clips"].shape[-2:]
    boxes = [_clip_boxes(inputs, b) for b in range(2)]
    valid = [tuple(hw) for hw in inputs["clip_sizes_before_padding_hw"]]
    with torch.no_grad():
        ref = literal_acar_outputs(model.roi_heads, features, boxes, valid, (H, W))
    h, w = ref["context_features_reduced"].shape[-2:]
    assert [h, w] == case["feature_map_hw"], ((h, w), case["feature_map_hw"])
    for name in ("roi_features", "high_order_features", "logits"):
        _report(f"literal {name}", ref[name], outputs[name])
    _report("literal scores", model.roi_heads.inference(ref["logits"]), outputs["scores"])
    _report("literal loss", pose_softmax_bce_loss(ref["logits"], inputs["targets"], POSE), outputs["loss"])
