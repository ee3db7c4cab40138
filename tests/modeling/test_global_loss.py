"""
The action loss over several processes is the mean over the boxes of all of them (the official
step's ``loss * boxes_here / boxes_all * world_size``), so DistributedDataParallel's averaged
gradient equals that of one process holding the whole batch, whatever the box counts per process.

Two CPU processes (gloo, detectron2 ``launch``) hold one clip each with 1 and 4 actor boxes; one
process alone holds both clips. The naive per-process mean (which DDP would average as a mean of
means) is computed as well, to show the comparison can fail.
"""
from pathlib import Path

import torch
from detectron2.engine import launch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils import comm

from acar_d2.engine import create_ddp_model
from acar_d2.modeling.roi_heads import global_box_weight, pose_softmax_bce_loss
from tests.testing_utils import tiny_acar_cfg

BOXES = [1, 4]  # boxes of rank 0 and rank 1: unequal on purpose
NUM_CLASSES = 4


def _cfg():
    cfg = tiny_acar_cfg(num_classes=NUM_CLASSES)
    cfg.MODEL.ACTION_HEAD.HR2O_DROPOUT = 0.0  # the two runs must see the same function
    return cfg


def _clip_input(index: int) -> dict:
    g = torch.Generator().manual_seed(100 + index)
    n = BOXES[index]
    xy = torch.rand(n, 2, generator=g) * 20
    boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 20], dim=1)
    inst = Instances((48, 64))
    inst.gt_boxes = Boxes(boxes)
    inst.gt_actions = (torch.rand(n, NUM_CLASSES, generator=g) > 0.5).float()
    return {"clip": torch.randn(3, 8, 48, 64, generator=g), "instances": inst}


def _grads(model) -> dict:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def _rank_main(weights: str, out: str) -> None:
    rank = comm.get_rank()
    model = build_model(_cfg())
    model.load_state_dict(torch.load(weights))
    model.train()
    ddp = create_ddp_model(model, broadcast_buffers=False)
    losses = ddp([_clip_input(rank)])
    losses["loss_action"].backward()
    torch.save({"grads": _grads(model), "loss": losses["loss_action"].detach(),
                "weight": global_box_weight(BOXES[rank], torch.device("cpu"))},
               Path(out) / f"rank{rank}.pt")


def test_global_box_weight_is_one_on_one_process():
    assert global_box_weight(3, torch.device("cpu")) == 1.0


def test_two_processes_with_unequal_boxes_give_the_whole_batch_gradient(tmp_path):
    torch.manual_seed(0)
    model = build_model(_cfg()).train()
    weights = tmp_path / "init.pth"
    torch.save(model.state_dict(), weights)

    # Reference: one process, both clips, the mean over all 5 boxes.
    model.zero_grad()
    model([_clip_input(0), _clip_input(1)])["loss_action"].backward()
    whole = _grads(model)

    # Naive per-process means averaged (what DDP did before): must differ from the reference.
    naive = {k: torch.zeros_like(v) for k, v in whole.items()}
    for i in (0, 1):
        model.zero_grad()
        model([_clip_input(i)])["loss_action"].backward()
        for k, v in _grads(model).items():
            naive[k] += v / 2

    launch(_rank_main, 2, dist_url="auto", args=(str(weights), str(tmp_path)))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    # weights: boxes_here / 5 * 2
    assert abs(ranks[0]["weight"] - 2 * 1 / 5) < 1e-12 and abs(ranks[1]["weight"] - 2 * 4 / 5) < 1e-12
    # the logged losses average to the global mean
    ref_loss = float(model([_clip_input(0), _clip_input(1)])["loss_action"].detach())
    assert abs(float(ranks[0]["loss"] + ranks[1]["loss"]) / 2 - ref_loss) < 1e-5 * max(1.0, ref_loss)

    assert set(ranks[0]["grads"]) == set(whole), "every trained parameter has a gradient on rank 0"
    worst_naive = 0.0
    for k, ref in whole.items():
        scale = ref.abs().max().item() + 1e-8
        for r in ranks:  # DDP all-reduced: both ranks hold the averaged gradient
            err = (r["grads"][k] - ref).abs().max().item() / scale
            assert err < 1e-4, f"{k}: DDP gradient differs from the whole batch's by {err:.2e}"
        worst_naive = max(worst_naive, (naive[k] - ref).abs().max().item() / scale)
    assert worst_naive > 1e-2, f"the mean of per-process means should differ ({worst_naive:.2e})"
