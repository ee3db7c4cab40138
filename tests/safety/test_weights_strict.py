"""
Weights that do not fit the model are refused (MODEL.WEIGHTS_STRICT): evaluation and prediction
need every model tensor from the file, training accepts a new head / detector (one log line),
and the expert switch loads what fits.
"""
import logging

import pytest
import torch
from detectron2.engine import default_argument_parser

from acar_d2.checkpoint import ACARCheckpointer, CheckpointMismatchError
from acar_d2.engine import Trainer, setup_cfg

from .conftest import INSTANT_CONFIG, StandIn, load_train_net, save_state, tiny_cfg, tiny_cfg_opts


def cfg_with(*opts):
    return setup_cfg(None, ["MODEL.DEVICE", "cpu", *opts])


def test_eval_refuses_other_head_width_and_lists_keys(tmp_path):
    path = save_state(StandIn(head_width=6).state_dict(), tmp_path / "other_head.pth")
    model = StandIn(head_width=4)
    before = model.roi_heads.fc.weight.clone()
    with pytest.raises(CheckpointMismatchError) as e:
        ACARCheckpointer.from_config(model, cfg_with(), purpose="eval").load(path)
    msg = str(e.value)
    assert "roi_heads.fc.weight (3, 6) vs (3, 4)" in msg and "other_head.pth" in msg, msg
    assert "MODEL.WEIGHTS_STRICT False" in msg
    assert torch.equal(model.roi_heads.fc.weight, before)
    # the expert switch: what fits is loaded, the rest stays as built
    lenient = ACARCheckpointer.from_config(model, cfg_with("MODEL.WEIGHTS_STRICT", "False"))
    lenient.load(path)
    assert torch.equal(model.backbone[0].weight, StandIn(head_width=6).backbone[0].weight)


def test_eval_refuses_missing_and_unexpected_tensors(tmp_path):
    state = StandIn().state_dict()
    state.pop("backbone.1.running_mean")
    state["roi_heads.extra.weight"] = torch.zeros(2)
    path = save_state(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointMismatchError) as e:
        ACARCheckpointer.from_config(StandIn(), cfg_with(), purpose="eval").load(path)
    assert "backbone.1.running_mean" in str(e.value) and "roi_heads.extra.weight" in str(e.value)
    # a backbone-only file is not enough to evaluate: the head would be random
    backbone_only = save_state({k: v for k, v in StandIn().state_dict().items()
                                if k.startswith("backbone.")}, tmp_path / "backbone.pth")
    with pytest.raises(CheckpointMismatchError, match=r"roi_heads\.fc\.weight"):
        ACARCheckpointer.from_config(StandIn(), cfg_with(), purpose="eval").load(backbone_only)


def test_eval_refuses_empty_weights():
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty"):
        ACARCheckpointer.from_config(StandIn(), cfg_with(), purpose="eval").load("")


def test_detector_keys_may_miss_only_when_the_detector_has_its_own_weights(tmp_path, caplog):
    action_only = {k: v for k, v in StandIn(detector=True).state_dict().items()
                   if not k.startswith("person_detector.")}
    path = save_state(action_only, tmp_path / "action_only.pth")
    with pytest.raises(CheckpointMismatchError, match=r"person_detector\.weight"):
        ACARCheckpointer.from_config(StandIn(detector=True), cfg_with(), purpose="eval").load(path)
    # MODEL.PERSON_DETECTOR.WEIGHTS: a plain detector file (no prefix), loaded by the checkpointer
    detector_file = tmp_path / "detector.pth"
    detector = {"weight": torch.full((2, 2), 7.0), "bias": torch.full((2,), -3.0)}
    save_state(detector, detector_file)
    seeded = cfg_with("MODEL.PERSON_DETECTOR.WEIGHTS", str(detector_file))
    model = StandIn(detector=True)
    with caplog.at_level(logging.INFO, logger="acar_d2.checkpoint.checkpointer"):
        ACARCheckpointer.from_config(model, seeded, purpose="eval").load(path)
    assert torch.equal(model.person_detector.weight, detector["weight"])
    assert torch.equal(model.person_detector.bias, detector["bias"])
    assert torch.equal(model.roi_heads.fc.weight, action_only["roi_heads.fc.weight"])
    lines = [r.getMessage() for r in caplog.records if "person_detector" in r.getMessage()]
    assert lines == [f"person_detector: not in {path}, keeps MODEL.PERSON_DETECTOR.WEIGHTS "
                     f"{detector_file} (2 tensors)"], lines


def test_training_accepts_a_backbone_only_pretrain_in_one_line(tmp_path, caplog):
    src = StandIn(head_width=6)
    path = save_state({k: v for k, v in src.state_dict().items() if k.startswith("backbone.")},
                      tmp_path / "K400_backbone.pth")
    model = StandIn(detector=True)
    with caplog.at_level(logging.INFO):
        ACARCheckpointer.from_config(model, cfg_with(), purpose="train").load(path)
    assert torch.equal(model.backbone[0].weight, src.backbone[0].weight)
    new = [r.getMessage() for r in caplog.records if "not in" in r.getMessage()]
    assert new == [
        f"roi_heads: not in {path}, new, initialized randomly (backbone-only pre-train) (2 tensors)",
        f"person_detector: not in {path}, new, initialized randomly (trained jointly) (2 tensors)",
    ], new
    # no per-key "not found in the checkpoint" warning from detectron2 beside that line
    assert not [r for r in caplog.records if "not found in the checkpoint" in r.getMessage()]


def test_training_refuses_a_head_of_another_shape_or_a_partial_backbone(tmp_path):
    other = save_state(StandIn(head_width=6).state_dict(), tmp_path / "other.pth")
    with pytest.raises(CheckpointMismatchError, match=r"roi_heads\.fc\.weight \(3, 6\) vs \(3, 4\)"):
        ACARCheckpointer.from_config(StandIn(), cfg_with(), purpose="train").load(other)
    state = StandIn().state_dict()
    state.pop("backbone.0.bias")
    partial = save_state(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointMismatchError, match=r"backbone\.0\.bias"):
        ACARCheckpointer.from_config(StandIn(), cfg_with(), purpose="train").load(partial)
    head_part = {k: v for k, v in StandIn().state_dict().items() if k != "roi_heads.fc.bias"}
    with pytest.raises(CheckpointMismatchError, match=r"roi_heads\.fc\.bias"):
        ACARCheckpointer.from_config(StandIn(), cfg_with(), purpose="train").load(
            save_state(head_part, tmp_path / "head_part.pth"))


def _other_width_checkpoint(tmp_path, tiny_world):
    cfg = tiny_cfg(tmp_path / "src", ["MODEL.ACTION_HEAD.HIDDEN_DIM", "16"])
    model = Trainer.build_model(cfg)
    return save_state(model.state_dict(), tmp_path / "hidden16.pth")


def test_eval_only_refuses_a_checkpoint_of_another_head_width(tiny_world, tmp_path):
    path = _other_width_checkpoint(tmp_path, tiny_world)
    argv = ["--config-file", str(INSTANT_CONFIG), "--eval-only"]
    argv += tiny_cfg_opts(tmp_path / "eval") + ["MODEL.WEIGHTS", path]
    with pytest.raises(CheckpointMismatchError) as e:
        load_train_net().main(default_argument_parser().parse_args(argv))
    msg = str(e.value)
    assert "hidden16.pth" in msg and "roi_heads." in msg and "vs" in msg, msg
    assert not (tmp_path / "eval" / "eval_results.json").exists()


def test_training_refuses_a_checkpoint_of_another_head_width(tiny_world, tmp_path):
    path = _other_width_checkpoint(tmp_path, tiny_world)
    trainer = Trainer(tiny_cfg(tmp_path / "train", ["MODEL.WEIGHTS", path]))
    with pytest.raises(CheckpointMismatchError, match="hidden16.pth"):
        trainer.resume_or_load(resume=False)
