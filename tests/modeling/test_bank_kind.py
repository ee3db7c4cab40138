"""
Which feature bank a model reads (issue 34, item 4): the head declares it (``bank_kind``),
``MODEL.FEATURE_BANK.KIND`` "" follows it (written into the config by ``setup_cfg``), and a KIND
that is not the head's is refused with the same one-line error by ``setup_cfg``, ``build_model``
(ACARNet) and the data mapper, in both directions (a bank head with another KIND, a head without
a bank with a KIND).
"""
from pathlib import Path

import pytest
from detectron2.modeling import build_model
from torch import nn

from acar_d2.config import bank_kind_from_config, bank_kind_of
from acar_d2.data.build import build_clip_mapper
from acar_d2.engine import setup_cfg
from acar_d2.modeling.roi_heads import ACARROIHeads, ACFBROIHeads, LFBROIHeads

REPO = Path(__file__).resolve().parents[2]


def _config(name: str) -> str:
    return str(REPO / "configs" / "Synthetic" / f"{name}_SLOWFAST_R18_1.5k_aca_world.yaml")


ACFB_AS_LFB = ("MODEL.ROI_HEADS.NAME=ACFBROIHeads reads an 'acfb' feature bank but "
               "MODEL.FEATURE_BANK.KIND='lfb'; set MODEL.FEATURE_BANK.KIND 'acfb', or \"\" to "
               "follow the head")
ACAR_AS_ACFB = ("MODEL.ROI_HEADS.NAME=ACARROIHeads reads no feature bank but "
                "MODEL.FEATURE_BANK.KIND='acfb'; set MODEL.FEATURE_BANK.KIND \"\", or a head that "
                "reads an 'acfb' bank (ACFBROIHeads)")


def test_heads_declare_their_kind():
    assert [bank_kind_of(c) for c in (ACFBROIHeads, LFBROIHeads, ACARROIHeads)] == ["acfb", "lfb", ""]
    assert bank_kind_of(nn.Linear(1, 1)) == ""  # any other module reads no bank


@pytest.mark.parametrize("config,kind,message", [("acfb", "lfb", ACFB_AS_LFB),
                                                 ("acar", "acfb", ACAR_AS_ACFB)])
def test_setup_cfg_refuses_a_kind_that_is_not_the_heads(config, kind, message):
    with pytest.raises(ValueError) as e:
        setup_cfg(_config(config), ["MODEL.DEVICE", "cpu", "MODEL.FEATURE_BANK.KIND", kind])
    assert str(e.value) == message


@pytest.mark.parametrize("config,kind", [("acfb", "acfb"), ("lfb", "lfb"), ("acar", "")])
def test_an_empty_kind_follows_the_head_into_config_yaml(config, kind):
    cfg = setup_cfg(_config(config), ["MODEL.DEVICE", "cpu", "MODEL.FEATURE_BANK.KIND", ""])
    assert cfg.MODEL.FEATURE_BANK.KIND == kind
    assert f"KIND: {kind!r}" in cfg.dump() or f"KIND: {kind}\n" in cfg.dump()  # config.yaml


@pytest.mark.parametrize("config,kind,message", [("acfb", "lfb", ACFB_AS_LFB),
                                                 ("acar", "acfb", ACAR_AS_ACFB)])
def test_model_and_mapper_refuse_a_config_changed_after_setup(config, kind, message):
    """A config that did not pass setup_cfg's check (changed afterwards, or made by hand) meets
    the same check where it meets the model and where it picks the data mapper."""
    cfg = setup_cfg(_config(config), ["MODEL.DEVICE", "cpu"], freeze=False)
    cfg.MODEL.FEATURE_BANK.KIND = kind
    with pytest.raises(ValueError) as e:
        build_model(cfg)
    assert str(e.value) == message
    with pytest.raises(ValueError) as e:
        build_clip_mapper(cfg, is_train=False)
    assert str(e.value) == message


def test_an_empty_kind_is_the_heads_without_setup_cfg():
    cfg = setup_cfg(_config("acfb"), ["MODEL.DEVICE", "cpu"], freeze=False)
    cfg.MODEL.FEATURE_BANK.KIND = ""
    assert bank_kind_from_config(cfg) == "acfb"
    model = build_model(cfg)
    assert bank_kind_of(model.roi_heads) == bank_kind_from_config(cfg, model.roi_heads) == "acfb"
    # a head name not registered: nothing to compare with here (build_model names it)
    cfg.MODEL.ROI_HEADS.NAME = "NotRegisteredROIHeads"
    cfg.MODEL.FEATURE_BANK.KIND = "lfb"
    assert bank_kind_from_config(cfg) == "lfb"


def test_export_asks_the_same_declaration():
    """The exporter refuses a bank head (its input per key frame comes from a first pass), by the
    head's kind; a head without a bank exports."""
    from acar_d2.export.action_model import ActionLogitsModel

    with pytest.raises(ValueError, match="ACFBROIHeads reads a long-term feature bank"):
        ActionLogitsModel(build_model(setup_cfg(_config("acfb"), ["MODEL.DEVICE", "cpu"])).eval())
    plain = ActionLogitsModel(build_model(setup_cfg(_config("acar"), ["MODEL.DEVICE", "cpu"])).eval())
    assert plain.num_classes == 10
