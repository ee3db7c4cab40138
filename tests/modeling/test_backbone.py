"""SlowFast backbone: shapes, stride/dilation contract, frozen BN, non-local blocks, config path."""
import math

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from acar_d2.modeling.backbone import (
    FrozenBatchNorm3d,
    FrozenStatsBatchNorm3d,
    SlowFast,
    pick_slow_frame_indices,
)
from acar_d2.engine import setup_cfg


def _tiny(**kwargs) -> SlowFast:
    torch.manual_seed(0)
    args = dict(depth=18, width=8, alpha=4, beta_inv=8, fusion_kernel_size=7)
    args.update(kwargs)
    return SlowFast(**args)


@pytest.mark.parametrize("depth,num_blocks", [(10, (1, 1, 1, 1)), (18, (2, 2, 2, 2)), (50, (3, 4, 6, 3)), (101, (3, 4, 23, 3))])
def test_output_shapes_per_depth(depth, num_blocks):
    width = 8
    model = _tiny(depth=depth, width=width).eval()
    x = torch.randn(2, 3, 8, 33, 47)
    with torch.no_grad():
        out = model(x)
    h, w = math.ceil(33 / 16), math.ceil(47 / 16)
    assert out["slow"].shape == (2, 32 * width, 2, h, w)
    assert out["fast"].shape == (2, 32 * width // 8, 8, h, w)
    spec = model.output_shape()
    assert spec["slow"].channels == 32 * width and spec["fast"].channels == 32 * width // 8 and spec["slow"].stride == 16
    for s, n in zip(("res2", "res3", "res4", "res5"), num_blocks):
        stage = getattr(model.slow, s)
        assert stage.num_blocks == n
        assert not hasattr(stage, str(n))


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (17, 64), (72, 100)])
def test_stride_dilation_contract(size):
    H, W = size
    x = torch.randn(1, 3, 4, H, W)
    dilated = _tiny(res5_dilation=2).eval()
    plain = _tiny(res5_dilation=1).eval()
    with torch.no_grad():
        a, b = dilated(x), plain(x)
    assert a["slow"].shape[-2:] == (math.ceil(H / 16), math.ceil(W / 16))
    assert a["fast"].shape[-2:] == (math.ceil(H / 16), math.ceil(W / 16))
    assert b["slow"].shape[-2:] == (math.ceil(H / 32), math.ceil(W / 32))
    assert dilated.output_shape()["slow"].stride == 16 and plain.output_shape()["fast"].stride == 32
    # dilation 2 really dilates res5's 3x3 convs, stride stays 1
    conv2 = getattr(dilated.slow.res5, "0").conv2
    assert conv2.dilation == (1, 2, 2) and conv2.stride == (1, 1, 1)


def test_res5_stride_one_undilated():
    """RES5_STRIDE 1 with dilation 1: stride-16 output with plain 3x3 convs in res5 (the
    receptive field is checked in tests/data/test_relation_world.py); bad combinations are
    refused; the config path builds it."""
    x = torch.randn(1, 3, 4, 48, 64)
    net = _tiny(res5_dilation=1, res5_stride=1).eval()
    assert net(x)["slow"].shape[-2:] == (3, 4) and net.output_shape()["slow"].stride == 16
    conv2 = getattr(net.slow.res5, "0").conv2
    assert conv2.dilation == (1, 1, 1) and conv2.stride == (1, 1, 1)
    with pytest.raises(ValueError, match="RES5_STRIDE 2 with RES5_DILATION 2"):
        _tiny(res5_dilation=2, res5_stride=2)
    with pytest.raises(ValueError, match="RES5_STRIDE must be"):
        _tiny(res5_dilation=1, res5_stride=3)
    cfg = setup_cfg("configs/Synthetic/acar_SLOWFAST_R18_1.5k_aca_world.yaml",
                    ["MODEL.SLOWFAST.DEPTH", "10", "MODEL.SLOWFAST.RES5_DILATION", "1",
                     "MODEL.SLOWFAST.RES5_STRIDE", "1"])
    bb = build_backbone(cfg)
    assert bb.output_shape()["slow"].stride == 16 and bb.slow.res5.num_blocks == 1


def test_slow_frame_sampling_rules():
    assert pick_slow_frame_indices(32, 4, True).tolist() == [0, 4, 8, 13, 17, 22, 26, 31]
    assert pick_slow_frame_indices(32, 4, False).tolist() == list(range(0, 32, 4))
    # the backbone really feeds those frames: a clip whose only non-zero frame is not a slow
    # frame must give the same slow stem output as an all-zero clip
    model = _tiny(slow_full_span=True).eval()
    x = torch.zeros(1, 3, 8, 16, 16)
    x[:, :, 1] = 1.0  # frame 1 is not in linspace(0, 7, 2) = [0, 7]
    stem_out = model.slow.stem(x.index_select(2, model.slow_frame_indices(8)))
    assert torch.allclose(stem_out, model.slow.stem(torch.zeros(1, 3, 2, 16, 16)))
    with pytest.raises(ValueError, match="divisible by alpha"):
        model(torch.zeros(1, 3, 6, 16, 16))
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        model(torch.zeros(1, 4, 8, 16, 16))


def test_frozen_bn_is_frozen():
    model = _tiny(norm="FrozenBN").train()
    bns = [m for m in model.modules() if isinstance(m, FrozenBatchNorm3d)]
    assert len(bns) > 0
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())
    for bn in bns:  # non-trivial statistics so that a stats update would be visible
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 1.5)
    before = {k: v.clone() for k, v in model.state_dict().items() if "bn" in k}
    assert all(not p.requires_grad for n, p in model.named_buffers())
    assert not any("bn" in n for n, _ in model.named_parameters())
    out = model(torch.randn(2, 3, 8, 32, 32))
    (out["slow"].sum() + out["fast"].sum()).backward()
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    # train and eval forward agree (statistics are not batch statistics)
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        a = model.train()(x)["slow"]
        b = model.eval()(x)["slow"]
    assert torch.allclose(a, b)


def test_frozen_bn_matches_batchnorm_eval():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm3d(6).eval()
    bn.weight.data.normal_()
    bn.bias.data.normal_()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    frozen = FrozenBatchNorm3d(6)
    missing = frozen.load_state_dict(bn.state_dict())  # num_batches_tracked accepted silently
    assert not missing.missing_keys and not missing.unexpected_keys
    x = torch.randn(2, 6, 3, 4, 5)
    assert torch.allclose(frozen(x), bn(x), atol=1e-6)


def test_frozen_stats_bn_trains_scale_and_shift_only():
    """NORM "FrozenStatsBN" (official freeze_bn): statistics fixed in train mode, scale / shift are
    parameters with gradients, train and eval forward identical, equal to BatchNorm3d.eval()."""
    model = _tiny(norm="FrozenStatsBN").train()
    bns = [m for m in model.modules() if isinstance(m, FrozenStatsBatchNorm3d)]
    assert len(bns) > 0 and not any(isinstance(m, FrozenBatchNorm3d) for m in model.modules())
    for bn in bns:
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 1.5)
    stats = {k: v.clone() for k, v in model.state_dict().items()
             if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    x = torch.randn(2, 3, 8, 32, 32)
    out = model(x)
    (out["slow"].sum() + out["fast"].sum()).backward()
    for k, v in stats.items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert all(bn.weight.grad is not None and bn.bias.grad is not None for bn in bns)
    # (random statistics may leave a few channels' ReLUs dead; nearly all layers get a gradient)
    assert sum(bool(bn.weight.grad.abs().sum() > 0) for bn in bns) >= 0.9 * len(bns)
    with torch.no_grad():
        assert torch.equal(model.train()(x)["slow"], model.eval()(x)["slow"])
    # One layer against nn.BatchNorm3d in eval mode, and the same state-dict keys both ways.
    ref = torch.nn.BatchNorm3d(6).eval()
    ref.weight.data.normal_()
    ref.running_var.uniform_(0.5, 2.0)
    layer = FrozenStatsBatchNorm3d(6).train()
    assert layer.load_state_dict(ref.state_dict()) is not None
    assert set(layer.state_dict()) == set(ref.state_dict())
    y = torch.randn(2, 6, 3, 4, 5)
    assert torch.equal(layer(y), ref(y))
    frozen = FrozenBatchNorm3d(6)
    frozen.load_state_dict(layer.state_dict())  # step counter accepted
    assert torch.allclose(frozen(y), layer(y), atol=1e-6)
    layer.load_state_dict(frozen.state_dict())  # a FrozenBN file has no step counter: accepted


def test_norm_names():
    with pytest.raises(ValueError, match="MODEL.SLOWFAST.NORM must be one of"):
        _tiny(norm="SyncBN")


def test_unfrozen_bn_updates_statistics():
    model = _tiny(norm="BN").train()
    bn = model.slow.stem.bn
    assert isinstance(bn, torch.nn.BatchNorm3d)
    before = bn.running_mean.clone()
    model(torch.randn(2, 3, 8, 32, 32))
    assert not torch.equal(before, bn.running_mean)


def test_nonlocal_blocks():
    locations = [[], [1], [0], []]
    plain = _tiny().eval()
    with_nl = _tiny(nonlocal_locations=locations).eval()
    # the shared layers get identical weights; only the non-local blocks differ
    missing = with_nl.load_state_dict(plain.state_dict(), strict=False)
    assert sorted({k.split(".")[2] for k in missing.missing_keys}) == ["nonlocal0", "nonlocal1"]
    assert not missing.unexpected_keys
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        ref = plain(x)
        # zero-initialised output BN (non-local paper Sec. 3.3): identity at start
        out0 = with_nl(x)
        assert torch.allclose(ref["slow"], out0["slow"], atol=1e-6)
        for m in (with_nl.slow.res3.nonlocal1, with_nl.slow.res4.nonlocal0):
            m.bn.weight.fill_(1.0)
        out1 = with_nl(x)
    assert out1["slow"].shape == ref["slow"].shape
    assert (out1["slow"] - ref["slow"]).abs().max() > 1e-3
    assert (out1["fast"] - ref["fast"]).abs().max() == 0  # fast pathway has no NL blocks
    with pytest.raises(ValueError, match="outside a stage"):
        _tiny(nonlocal_locations=[[5], [], [], []])


def test_fusion_only_conv_has_no_bn():
    model = _tiny(fusion_only_conv=True, fusion_kernel_size=5)
    keys = [k for k in model.state_dict() if k.startswith("fuse.")]
    assert sorted(keys) == sorted(f"fuse.{s}.conv.weight" for s in ("stem", "res2", "res3", "res4"))
    assert model.fuse["stem"].conv.kernel_size == (5, 1, 1)
    assert model.fuse["stem"].conv.stride == (4, 1, 1)


def test_build_from_config():
    cfg = setup_cfg(freeze=False)
    cfg.MODEL.SLOWFAST.DEPTH = 18
    cfg.MODEL.SLOWFAST.WIDTH = 8
    cfg.MODEL.SLOWFAST.RES5_DILATION = 1
    cfg.MODEL.SLOWFAST.OUT_FEATURES = ["slow"]
    model = build_backbone(cfg, ShapeSpec(channels=3))
    assert isinstance(model, SlowFast)
    assert set(model.output_shape()) == {"slow"}
    assert model.output_shape()["slow"] == ShapeSpec(channels=256, stride=32)
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 8, 64, 64))
    assert set(out) == {"slow"} and out["slow"].shape == (1, 256, 2, 2, 2)
