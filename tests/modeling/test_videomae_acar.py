"""
The ACAR head on VideoMAE ViT features (configs/VideoMAE/acar_*_VIT_*.yaml): the configs build an
ACARNet whose ACAR head reads the ViT map, and a tiny version (2 blocks, width 32, 4 frames, 64 px)
trains with the configured AdamW + layer-wise LR decay: the loss falls.
"""
from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from acar_d2.checkpoint import ACARCheckpointer
from acar_d2.engine import Trainer, setup_cfg
from acar_d2.modeling.roi_heads import ACARROIHeads

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "VideoMAE"
TINY = ["MODEL.DEVICE", "cpu", "MODEL.VIDEOMAE.DEPTH", "2", "MODEL.VIDEOMAE.EMBED_DIM", "32",
        "MODEL.VIDEOMAE.NUM_HEADS", "2", "INPUT.CLIP.NUM_FRAMES", "4", "MODEL.ACTION_HEAD.REDUCE_DIM", "16",
        "MODEL.ACTION_HEAD.HIDDEN_DIM", "16", "SOLVER.BASE_LR", "0.002"]
CONFIGS = ["acar_hr2o_depth2_VIT_B_k400_mae_ft_16x4_ava_v2.2.yaml", "acar_hr2o_depth2_VIT_L_k400_mae_ft_16x4_ava_v2.2.yaml"]


def actor_batch():
    """Two 64x64 clips, 2 and 1 actors; each actor one pose class (0..12) and one other class."""
    g = torch.Generator().manual_seed(3)
    batch = []
    for boxes, labels in [([[2, 4, 30, 60], [34, 10, 62, 50]], [(0, 20), (5, 40)]), ([[10, 8, 50, 60]], [(12, 59)])]:
        boxes = torch.tensor(boxes, dtype=torch.float32)
        inst = Instances((64, 64), gt_boxes=Boxes(boxes))
        gt = torch.zeros(len(boxes), 60)
        for i, (pose, other) in enumerate(labels):
            gt[i, pose] = gt[i, other] = 1
        inst.gt_actions = gt
        batch.append({"clip": torch.randn(3, 4, 64, 64, generator=g), "instances": inst})
    return batch


@pytest.mark.parametrize("name", CONFIGS)
def test_acar_on_vit_config(name):
    cfg = setup_cfg(str(CONFIG_DIR / name), TINY, freeze=False)
    dims = {"VIT_B": (768, 12, 12, 0.75), "VIT_L": (1024, 24, 16, 0.8)}[name.split("_")[3] + "_" + name.split("_")[4]]
    full = setup_cfg(str(CONFIG_DIR / name), ["MODEL.DEVICE", "cpu"], freeze=False)
    v = full.MODEL.VIDEOMAE
    assert (v.EMBED_DIM, v.DEPTH, v.NUM_HEADS, full.SOLVER.LAYER_DECAY) == dims
    assert (full.SOLVER.OPTIMIZER, full.INPUT.CLIP.NUM_FRAMES, list(full.MODEL.ROI_HEADS.IN_FEATURES)) == ("AdamW", 16, ["vit"])
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model.roi_heads, ACARROIHeads) and len(model.roi_heads.hr2o) == 2
    assert model.roi_heads.conv_reduce.in_channels == 32  # the ViT width, from output_shape()


def test_acar_on_vit_trains_with_layer_decay():
    cfg = setup_cfg(str(CONFIG_DIR / CONFIGS[0]), TINY, freeze=False)
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.9, 0.999)
    lrs = sorted({round(g["lr"] / 0.002, 6) for g in optimizer.param_groups})
    assert lrs == [0.75 ** 3, 0.75 ** 2, 0.75, 1.0], lrs  # patch embed, block 0, block 1, norm + head
    batch = actor_batch()
    model.train()
    losses = []
    with EventStorage():
        for _ in range(12):
            loss = model(batch)["loss_action"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < 0.7 * first, losses
    model.eval()
    props = Instances((64, 64), proposal_boxes=batch[0]["instances"].gt_boxes, scores=torch.ones(2))
    with torch.no_grad():
        inst = model([{"clip": batch[0]["clip"], "proposals": props}])[0]["instances"]
    assert tuple(inst.action_scores.shape) == (2, 60)
    assert torch.allclose(inst.action_scores[:, :13].sum(1), torch.ones(2), atol=1e-5)  # pose softmax


def test_acar_on_vit_initialised_from_a_videomae_ava_file(tmp_path):
    """An official-layout VideoMAE AVA file (ViT + linear head.*): training rules load the ViT
    strictly, drop the linear head and keep the ACAR head new."""
    cfg = setup_cfg(str(CONFIG_DIR / CONFIGS[0]), TINY, freeze=False)
    torch.manual_seed(1)
    donor = build_model(cfg).backbone.state_dict()
    official = {k: v for k, v in donor.items()}
    official.update({"head.weight": torch.randn(80, 32), "head.bias": torch.randn(80)})
    torch.save({"module": official}, tmp_path / "ava.pth")
    torch.manual_seed(0)
    model = build_model(cfg)
    head_before = model.roi_heads.conv_reduce.weight.clone()
    ACARCheckpointer.from_config(model, cfg, purpose="train").load(str(tmp_path / "ava.pth"))
    for k, v in donor.items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    assert torch.equal(model.roi_heads.conv_reduce.weight, head_before)


def test_feature_bank_records_the_vit_settings():
    """A bank extracted with a ViT is tied to its width and the 464 px size limit; SlowFast banks
    written before these keys existed keep their record."""
    from acar_d2.data.feature_bank import bank_compat_keys

    vit = bank_compat_keys(setup_cfg(str(CONFIG_DIR / CONFIGS[1]), ["MODEL.DEVICE", "cpu"], freeze=False), "acfb")
    assert (vit["INPUT.CLIP.MAX_SIZE"], vit["MODEL.VIDEOMAE.EMBED_DIM"], vit["MODEL.ROI_HEADS.IN_FEATURES"]) == (464, 1024, ["vit"])
    r50 = bank_compat_keys(setup_cfg(str(CONFIG_DIR.parent / "AVA" / "SLOWFAST_R50_ACAR_HR2O.yaml"),
                                     ["MODEL.DEVICE", "cpu"], freeze=False), "acfb")
    assert not {"INPUT.CLIP.MAX_SIZE", "MODEL.VIDEOMAE.EMBED_DIM"} & set(r50), r50
