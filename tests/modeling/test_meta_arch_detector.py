"""
ACARNet with its person detector (MODEL.PERSON_DETECTOR): joint losses, frozen detector, detected
test boxes in key-frame px, online training-box assembly, checkpoint round trip.
"""
import os

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from acar_d2.checkpoint import ACARCheckpointer
from acar_d2.engine import setup_cfg
from acar_d2.data.detection_utils import detector_image

from .test_person_detector import TINY, synthetic_key_frame

CONFIG = "configs/Synthetic/acar_detector_SLOWFAST_R18_1.5k_aca_world.yaml"
DET_LOSSES = {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}


def joint_cfg(*opts):
    return setup_cfg(CONFIG, [
        "MODEL.DEVICE", "cpu", "INPUT.CLIP.NUM_FRAMES", "4", "MODEL.SLOWFAST.WIDTH", "8",
        "MODEL.PERSON_DETECTOR.TRAIN_MAX_IMAGES", "0",
    ] + list(opts))


def make_input(model, training: bool, flip: bool = False):
    """One clip input as the mapper makes it: 64x85 clip of the 120x160 synthetic key frame."""
    frame, boxes = synthetic_key_frame()
    if flip:
        frame = frame[:, ::-1]
        boxes = np.stack([160 - boxes[:, 2], boxes[:, 1], 160 - boxes[:, 0], boxes[:, 3]], 1)
    h, w = 64, 85
    det = model.person_detector
    image, tfm = detector_image(frame, det.augmentation(False), det.input_format)
    x = {"clip": torch.randn(3, 4, 85, 85), "valid_size": (h, w), "height": 120, "width": 160,
         "video_id": "v", "timestamp": 1, "image": image}
    if training:
        k = 10
        actions = torch.zeros(len(boxes), k)
        actions[torch.arange(len(boxes)), torch.arange(len(boxes)) % k] = 1
        inst = Instances((85, 85))
        inst.gt_boxes = Boxes(torch.as_tensor(boxes * np.array([w / 160, h / 120] * 2), dtype=torch.float32))
        inst.gt_actions = actions
        x["instances"] = inst
        pi = Instances(tuple(image.shape[-2:]))
        pi.gt_boxes = Boxes(torch.as_tensor(tfm.apply_box(boxes), dtype=torch.float32))
        pi.gt_classes = torch.zeros(len(boxes), dtype=torch.int64)
        pi.gt_actions = actions
        x["person_instances"] = pi
    return x


def test_joint_training_step_all_losses_finite():
    torch.manual_seed(0)
    model = build_model(joint_cfg("MODEL.PERSON_DETECTOR.TRAIN_BOX_SOURCE", "detector"))
    assert type(model.person_detector).__name__ == "PersonDetector"
    assert any(k.startswith("person_detector.proposal_generator.") for k in model.state_dict())
    model.train()
    with EventStorage():
        losses = model([make_input(model, True), make_input(model, True, flip=True)])
    assert set(losses) == {"loss_action"} | DET_LOSSES
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in model.person_detector.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_frozen_detector_no_grads_no_detector_losses():
    model = build_model(joint_cfg("MODEL.PERSON_DETECTOR.FROZEN", "True"))
    model.train()
    assert not model.person_detector.training
    with EventStorage():
        losses = model([make_input(model, True)])
    assert set(losses) == {"loss_action"}
    losses["loss_action"].backward()
    assert all(p.grad is None and not p.requires_grad for p in model.person_detector.parameters())
    assert any(p.grad is not None for p in model.backbone.parameters())


def test_inference_without_proposals_uses_detector_in_key_frame_px():
    torch.manual_seed(0)
    model = build_model(joint_cfg("MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH", "0.3"))
    model.eval()
    x = make_input(model, False)
    with torch.no_grad():
        out = model([x])[0]["instances"]
        alone = model.person_detector.detect([x["image"]], [(120, 160)])[0]
    assert out.image_size == (120, 160) and len(out) == len(alone) > 0
    torch.testing.assert_close(out.pred_boxes.tensor, alone.proposal_boxes.tensor, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.scores, alone.scores)
    assert out.action_scores.shape == (len(out), 10) and out.action_logits.shape == (len(out), 10)
    # a proposal file is present: TEST_BOX_SOURCE decides; "box_source" overrides per input
    props = Instances((85, 85))
    props.proposal_boxes = Boxes(torch.tensor([[10.0, 10.0, 30.0, 50.0]]))
    props.scores = torch.tensor([0.99])
    with torch.no_grad():
        det_out = model([dict(x, proposals=props)])[0]["instances"]
        file_out = model([dict(x, proposals=props, box_source="file")])[0]["instances"]
    assert len(det_out) == len(alone)
    assert len(file_out) == 1
    torch.testing.assert_close(file_out.pred_boxes.tensor,
                               torch.tensor([[10 * 160 / 85, 10 * 120 / 64, 30 * 160 / 85, 50 * 120 / 64]]))


def test_online_training_boxes_take_labels_only_at_high_iou(monkeypatch):
    model = build_model(joint_cfg("MODEL.PERSON_DETECTOR.TRAIN_BOX_SOURCE", "detector"))
    x = {"clip": torch.zeros(3, 4, 50, 50), "valid_size": (50, 50), "image": torch.zeros(3, 100, 100,
         dtype=torch.uint8)}
    pi = Instances((100, 100))
    pi.gt_boxes = Boxes(torch.tensor([[10.0, 10.0, 50.0, 90.0], [60.0, 10.0, 90.0, 90.0]]))
    pi.gt_classes = torch.zeros(2, dtype=torch.int64)
    pi.gt_actions = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x["person_instances"] = pi
    dets = Instances((100, 100))
    # IoU 0.95 with box 0 (takes [1, 0]); IoU ~0.8 with box 1 (dropped); a score below 0.9 (dropped)
    dets.proposal_boxes = Boxes(torch.tensor([[10.0, 10.0, 50.0, 86.0], [60.0, 10.0, 90.0, 74.0],
                                              [10.0, 10.0, 50.0, 90.0]]))
    dets.scores = torch.tensor([0.95, 0.97, 0.5])
    calls = []

    def fake_detect(images, sizes, score_thresh=None):
        calls.append((tuple(images[0].shape), sizes, score_thresh))
        keep = dets.scores >= score_thresh
        return [dets[keep]]

    monkeypatch.setattr(model.person_detector, "detect", fake_detect)
    gt_clip = Boxes(pi.gt_boxes.tensor / 2)
    boxes, actions = model.add_detected_training_rois([x], [gt_clip], [pi.gt_actions])
    assert calls == [((3, 100, 100), [(100, 100)], 0.9)]
    torch.testing.assert_close(boxes[0].tensor, torch.tensor(
        [[5.0, 5.0, 25.0, 45.0], [30.0, 5.0, 45.0, 45.0], [5.0, 5.0, 25.0, 43.0]]))
    torch.testing.assert_close(actions[0], torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))


def test_acarnet_checkpoint_restores_detector(tmp_path):
    torch.manual_seed(1)
    model = build_model(joint_cfg())
    ACARCheckpointer(model, str(tmp_path)).save("joint")
    torch.manual_seed(2)
    cfg = joint_cfg("MODEL.WEIGHTS", str(tmp_path / "joint.pth"))
    restored = build_model(cfg)
    ACARCheckpointer(restored).load(cfg.MODEL.WEIGHTS)
    ref = model.person_detector.state_dict()
    for k, v in restored.person_detector.state_dict().items():
        assert torch.equal(v, ref[k]), k
    # the same file seeds the detector alone through MODEL.PERSON_DETECTOR.WEIGHTS, loaded by the
    # checkpointer of the config (building the model reads no file)
    torch.manual_seed(3)
    seeded_cfg = joint_cfg("MODEL.PERSON_DETECTOR.WEIGHTS", str(tmp_path / "joint.pth"))
    seeded = build_model(seeded_cfg)
    assert not torch.equal(seeded.person_detector.state_dict()["roi_heads.box_predictor.cls_score"
                                                                ".weight"],
                           ref["roi_heads.box_predictor.cls_score.weight"])
    ACARCheckpointer.from_config(seeded, seeded_cfg, purpose="train").load("")
    for k, v in seeded.person_detector.state_dict().items():
        assert torch.equal(v, ref[k]), k


def _detector_file(tmp_path, seed: int):
    """A plain detectron2 detector checkpoint of the tiny config (random init ``seed``)."""
    from detectron2.checkpoint import DetectionCheckpointer

    from acar_d2.config import load_detector_config

    torch.manual_seed(seed)
    detector = build_model(load_detector_config(TINY))
    DetectionCheckpointer(detector, save_dir=str(tmp_path)).save(f"detector_{seed}")
    return str(tmp_path / f"detector_{seed}.pth"), detector.state_dict()


def _assert_detector_equal(model, ref):
    got = model.person_detector.state_dict()
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert torch.equal(got[k], v), k


def test_detector_weights_are_loaded_by_predictor_and_training_checkpointer(tmp_path):
    """MODEL.PERSON_DETECTOR.WEIGHTS reaches the detector through ActionPredictor (eval) and the
    trainer's checkpointer (resume_or_load of a fresh run); a resumed checkpoint wins over it."""
    from acar_d2.engine import ActionPredictor, Trainer

    det_path, det_ref = _detector_file(tmp_path, seed=11)
    torch.manual_seed(0)
    action = build_model(joint_cfg())
    action_only = {k: v for k, v in action.state_dict().items()
                   if not k.startswith("person_detector.")}
    torch.save({"model": action_only}, tmp_path / "action_only.pth")

    predictor = ActionPredictor(joint_cfg("MODEL.WEIGHTS", str(tmp_path / "action_only.pth"),
                                          "MODEL.PERSON_DETECTOR.WEIGHTS", det_path))
    _assert_detector_equal(predictor.model, det_ref)
    head = predictor.model.roi_heads.state_dict()
    for k, v in action.roi_heads.state_dict().items():
        assert torch.equal(head[k], v), k

    # training from scratch (MODEL.WEIGHTS ""): what DefaultTrainer.resume_or_load calls
    cfg = joint_cfg("MODEL.PERSON_DETECTOR.WEIGHTS", det_path, "OUTPUT_DIR", str(tmp_path / "run"))
    torch.manual_seed(5)
    model = build_model(cfg)
    checkpointer = Trainer.build_checkpointer(cfg, model, purpose="train")
    checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=True)
    _assert_detector_equal(model, det_ref)

    # resuming: the run's checkpoint holds every person_detector.* tensor; the seed file is not
    # read (it may be gone), the checkpoint's detector is restored
    with torch.no_grad():
        model.person_detector.roi_heads.box_predictor.cls_score.bias.fill_(0.25)
    os.makedirs(cfg.OUTPUT_DIR)
    checkpointer.save("model_0000009", iteration=9)
    os.remove(det_path)
    torch.manual_seed(6)
    resumed = build_model(cfg)
    extra = Trainer.build_checkpointer(cfg, resumed, purpose="train").resume_or_load(
        cfg.MODEL.WEIGHTS, resume=True)
    assert extra["iteration"] == 9
    bias = resumed.person_detector.roi_heads.box_predictor.cls_score.bias
    assert torch.equal(bias, torch.full_like(bias, 0.25))


def test_optimizer_skips_frozen_detector():
    from acar_d2.engine import Trainer

    frozen = build_model(joint_cfg("MODEL.PERSON_DETECTOR.FROZEN", "True"))
    trainable = build_model(joint_cfg())
    n_frozen = sum(len(g["params"]) for g in Trainer.build_optimizer(joint_cfg(), frozen).param_groups)
    n_train = sum(len(g["params"]) for g in Trainer.build_optimizer(joint_cfg(), trainable).param_groups)
    n_det = len(list(trainable.person_detector.parameters()))
    assert n_train - n_frozen == n_det > 0
