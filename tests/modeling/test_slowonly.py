"""SlowOnly backbone: shapes / strides of the paper's R50, PySlowFast checkpoint keys load onto it
(every tensor, outputs identical), and a UCF101-24 SlowOnly model runs end to end."""
import re

import torch

from acar_d2.checkpoint.convert import convert_checkpoint
from acar_d2.modeling.backbone import SlowOnly
from acar_d2.modeling.backbone.slowfast import SlowFast

BRANCH = {"1": "a", "2": "b", "3": "c"}


def _to_pyslowfast(key: str) -> str:
    """acar_d2 slow-pathway key -> PySlowFast ResNet (SlowOnly) model_state key."""
    m = re.fullmatch(r"slow\.stem\.(conv|bn)\.(.+)", key)
    if m:
        return f"s1.pathway0_stem.{m[1]}.{m[2]}"
    m = re.fullmatch(r"slow\.res(\d)\.(\d+)\.conv(\d)\.weight", key)
    if m:
        return f"s{m[1]}.pathway0_res{m[2]}.branch2.{BRANCH[m[3]]}.weight"
    m = re.fullmatch(r"slow\.res(\d)\.(\d+)\.bn(\d)\.(.+)", key)
    if m:
        return f"s{m[1]}.pathway0_res{m[2]}.branch2.{BRANCH[m[3]]}_bn.{m[4]}"
    m = re.fullmatch(r"slow\.res(\d)\.(\d+)\.shortcut\.weight", key)
    if m:
        return f"s{m[1]}.pathway0_res{m[2]}.branch1.weight"
    m = re.fullmatch(r"slow\.res(\d)\.(\d+)\.shortcut_bn\.(.+)", key)
    assert m, key
    return f"s{m[1]}.pathway0_res{m[2]}.branch1_bn.{m[3]}"


def test_r50_shapes_match_slowfast_slow_pathway():
    so = SlowOnly(depth=50, width=64, res5_dilation=2)
    assert so.output_shape()["slow"].channels == 2048 and so.output_shape()["slow"].stride == 16
    assert SlowOnly(depth=50, res5_dilation=1).output_shape()["slow"].stride == 32
    # same blocks as the SlowFast slow pathway, minus the lateral input channels
    sf = SlowFast(depth=50, width=64)
    so_shapes = {k: v.shape for k, v in so.state_dict().items()}
    sf_shapes = {k: v.shape for k, v in sf.state_dict().items() if k.startswith("slow.")}
    assert set(so_shapes) == set(sf_shapes)
    differ = sorted(k for k in so_shapes if so_shapes[k] != sf_shapes[k])
    # only the first conv / shortcut of res3..res5 and res2 read the lateral channels
    assert differ == [f"slow.res{s}.0.{n}.weight" for s in (2, 3, 4, 5) for n in ("conv1", "shortcut")]
    # with trainable BN: 31.63M, + the K400 head (2048 x 400 + 400) = 32.45M, Slow-only R50's size
    n = sum(p.numel() for p in SlowOnly(depth=50, norm="BN").parameters())
    assert n == 31_634_496 and round((n + 2048 * 400 + 400) / 1e6, 2) == 32.45


def test_pyslowfast_slowonly_checkpoint_loads(tmp_path):
    torch.manual_seed(0)
    src = SlowOnly(depth=18, width=8, norm="FrozenBN")
    for v in src.state_dict().values():  # non-trivial BN statistics too
        v.copy_(torch.rand_like(v) + 0.5) if v.dtype.is_floating_point else None
    state = {_to_pyslowfast(k): v.clone() for k, v in src.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    state["head.projection.weight"] = torch.zeros(400, 256)
    state["head.projection.bias"] = torch.zeros(400)
    path = tmp_path / "SLOW_8x8_R18.pyth"
    torch.save({"model_state": state}, path)
    converted = convert_checkpoint(str(path))  # format detected: pyslowfast
    dst = SlowOnly(depth=18, width=8, norm="FrozenBN")
    missing, unexpected = dst.load_state_dict(
        {k[len("backbone."):]: v for k, v in converted.items()}, strict=False)
    assert unexpected == [] and [k for k in missing if not k.endswith("num_batches_tracked")] == []
    x = torch.randn(1, 3, 8, 32, 48)
    with torch.no_grad():
        a, b = src.eval()(x)["slow"], dst.eval()(x)["slow"]
    assert a.shape == (1, 256, 8, 2, 3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_ucf_slowonly_model_runs_and_learns():
    from detectron2.modeling import build_model
    from detectron2.structures import Boxes, Instances

    from acar_d2.engine import setup_cfg

    cfg = setup_cfg("configs/UCF101-24/acar_hr2o_depth2_SLOWONLY_R50_5.4k_ucf101_24.yaml",
                    ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "MODEL.SLOWFAST.DEPTH", "18",
                     "MODEL.SLOWFAST.WIDTH", "8", "MODEL.ACTION_HEAD.REDUCE_DIM", "16",
                     "MODEL.ACTION_HEAD.HIDDEN_DIM", "8"])
    assert (cfg.INPUT.CLIP.NUM_FRAMES, cfg.INPUT.CLIP.SAMPLING_RATE) == (8, 2)
    assert (cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS), cfg.SOLVER.BASE_LR,
            cfg.SOLVER.WARMUP_ITERS) == (5400, (4900, 5100), 0.002, 1350)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    clip = torch.randn(3, 8, 64, 64)
    box = Boxes(torch.tensor([[8.0, 8.0, 40.0, 60.0]]))
    gt = torch.zeros(1, 24)
    gt[0, 5] = 1
    inst = Instances((64, 64), gt_boxes=box, gt_actions=gt)
    props = Instances((64, 64), proposal_boxes=box, scores=torch.ones(1))
    batch = [{"clip": clip, "instances": inst, "proposals": props, "height": 64, "width": 64}]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    losses = []
    for _ in range(5):
        loss = sum(model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    # one softmax over the 24 classes (BCE on its probabilities, mean over K): near-uniform start
    # (-log(1/24) - 23 log(23/24)) / 24 = 0.173, then down
    assert abs(losses[0] - 0.173) < 0.03 and losses[-1] < losses[0] * 0.7, losses
