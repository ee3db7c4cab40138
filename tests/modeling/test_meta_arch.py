"""
ACARNet contract: training loss dict, inference fields, boxes rescaled to height/width, clips of
different sizes in one batch equal one by one, a clip without proposals. Tiny SlowFast (depth 18,
width 8, 8 frames, 64 px), CPU, seeded.
"""
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from tests.testing_utils import tiny_acar_cfg

K = 4


def tiny_model():
    cfg = tiny_acar_cfg(num_classes=K)
    cfg.MODEL.ACTION_HEAD.HR2O_DEPTH = 1
    cfg.MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH = 0.5
    torch.manual_seed(0)
    return build_model(cfg)


def clip_input(seed, hw, valid, boxes, scores=None, height=None, width=None):
    g = torch.Generator().manual_seed(seed)
    clip = torch.zeros(3, 8, *hw)
    clip[:, :, : valid[0], : valid[1]] = torch.randn(3, 8, *valid, generator=g)
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    props = Instances(hw)
    props.proposal_boxes = Boxes(boxes)
    props.scores = torch.ones(len(boxes)) if scores is None else torch.tensor(scores)
    inst = Instances(hw)
    inst.gt_boxes = Boxes(boxes.clone())
    gt = torch.zeros(len(boxes), K)
    if len(boxes):
        gt[:, 0] = 1
        gt[:, 3] = 1
    inst.gt_actions = gt
    return {"clip": clip, "valid_size": valid, "height": height or valid[0],
            "width": width or valid[1], "proposals": props, "instances": inst}


def test_train_and_inference_contract():
    model = tiny_model()
    batch = [
        clip_input(0, (64, 64), (64, 48), [[2, 4, 30, 60], [20, 10, 46, 50]], height=320, width=240),
        clip_input(1, (64, 64), (64, 64), []),
        clip_input(2, (48, 64), (48, 64), [[10, 5, 40, 45]], scores=[0.9]),
    ]
    model.train()
    with EventStorage() as storage:
        losses = model(batch)
        assert set(losses) == {"loss_action"}
        assert storage.latest()["acar/num_actors"][0] == 3
    losses["loss_action"].backward()
    assert torch.isfinite(losses["loss_action"])

    model.eval()
    batch[0]["proposals"].scores = torch.tensor([0.9, 0.2])  # second one below the 0.5 threshold
    with torch.no_grad():
        out = model(batch)
        alone = [model([x])[0]["instances"] for x in batch]
    inst = out[0]["instances"]
    assert inst.image_size == (320, 240) and len(inst) == 1
    # clip px (64 x 48 valid) -> 320 x 240 original: x5
    assert torch.allclose(inst.pred_boxes.tensor, torch.tensor([[10.0, 20.0, 150.0, 300.0]]))
    assert set(inst.get_fields()) == {"pred_boxes", "scores", "action_logits", "action_scores"}
    assert inst.action_scores.shape == (1, K)
    assert torch.allclose(inst.action_scores[:, :2].sum(1), torch.ones(1))  # pose softmax
    assert len(out[1]["instances"]) == 0
    for o, a in zip(out, alone):  # batch of different sizes == one by one
        assert torch.allclose(o["instances"].action_logits, a.action_logits, atol=1e-5)


def test_loss_decreases():
    model = tiny_model()
    batch = [clip_input(0, (64, 64), (64, 64), [[2, 4, 30, 60], [20, 10, 46, 50]])]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    model.train()
    first = last = None
    with EventStorage():
        for _ in range(8):
            loss = model(batch)["loss_action"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = first if first is not None else loss.item()
            last = loss.item()
    assert last < 0.7 * first, (first, last)
