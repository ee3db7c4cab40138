"""SlowFast backbone: shapes, stride/dilation contract, frozen BN, non-local blocks, config path."""
import math

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from acar_d2.modeling.backbone import FrozenBatchNorm3d, SlowFast, pick_slow_frame_indices
from acar_d2.engine import setup_cfg


def _tiny(**kwargs) -> SlowFast:
    torch.manual_seed(0)
    args = dict(depth=18, width=8, alpha=4, beta_inv=8, fusion_kernel_size=7)
    args.update(kwargs)
    return SlowFast(**args)


@pytest.mark.parametrize("depth,num_blocks", [(18, (2, 2, 2, 2)), (50, (3, 4, 6, 3)), (101, (3, 4, 23, 3))])
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
    model = _tiny(frozen_bn=True).train()
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


def test_unfrozen_bn_updates_statistics():
    model = _tiny(frozen_bn=False).train()
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
