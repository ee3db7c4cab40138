"""Checkpoint conversion and ACARCheckpointer: key renaming, format detection, bad input."""
import pickle

import pytest
import torch

from acar_d2.checkpoint import (
    ACARCheckpointer,
    CheckpointMismatchError,
    UnknownKeysError,
    convert_checkpoint,
    convert_checkpoint_with_report,
    detect_source,
)
from acar_d2.checkpoint.key_mapping import acar_backbone_to_d2, caffe2_to_d2, pyslowfast_to_d2
from acar_d2.modeling.backbone import SlowFast


def tiny(**kwargs) -> SlowFast:
    torch.manual_seed(0)
    args = dict(depth=18, width=8, norm="FrozenBN")
    args.update(kwargs)
    return SlowFast(**args).eval()


class Model(torch.nn.Module):
    """Meta-architecture stand-in: ``backbone`` + a head named like the official ACAR head."""

    def __init__(self, **kwargs):
        super().__init__()
        self.backbone = tiny(**kwargs)
        self.roi_heads = torch.nn.Module()
        self.roi_heads.fc = torch.nn.Linear(4, 3, bias=False)


# d2 name -> official ACAR name (hand-written known answers, one per rule)
KNOWN = {
    "slow.stem.conv.weight": "slow_conv1.weight",
    "fast.stem.bn.running_var": "fast_bn1.running_var",
    "slow.res2.0.conv1.weight": "slow_res1.0.conv1.weight",
    "fast.res5.2.bn3.bias": "fast_res4.2.bn3.bias",
    "slow.res4.0.shortcut.weight": "slow_res3.0.downsample.0.weight",
    "slow.res4.0.shortcut_bn.running_mean": "slow_res3.0.downsample_bn.running_mean",
    "fuse.stem.conv.weight": "Tconv1.0.weight",
    "fuse.res4.bn.weight": "Tconv4.1.weight",
}


def to_official(d2_key: str) -> str:
    """Inverse of the mapping, for building official-format test files from a model."""
    for k, v in KNOWN.items():
        if k == d2_key:
            return v
    import re

    m = re.fullmatch(r"(slow|fast)\.stem\.(conv|bn)\.(\w+)", d2_key)
    if m:
        return f"{m[1]}_{'conv1' if m[2] == 'conv' else 'bn1'}.{m[3]}"
    m = re.fullmatch(r"(slow|fast)\.res(\d)\.(\d+)\.(conv\d|bn\d)\.(\w+)", d2_key)
    if m:
        return f"{m[1]}_res{int(m[2]) - 1}.{m[3]}.{m[4]}.{m[5]}"
    m = re.fullmatch(r"(slow|fast)\.res(\d)\.(\d+)\.shortcut\.weight", d2_key)
    if m:
        return f"{m[1]}_res{int(m[2]) - 1}.{m[3]}.downsample.0.weight"
    m = re.fullmatch(r"(slow|fast)\.res(\d)\.(\d+)\.shortcut_bn\.(\w+)", d2_key)
    if m:
        return f"{m[1]}_res{int(m[2]) - 1}.{m[3]}.downsample_bn.{m[4]}"
    m = re.fullmatch(r"fuse\.(\w+)\.(conv|bn)\.(\w+)", d2_key)
    k = {"stem": 1, "res2": 2, "res3": 3, "res4": 4}[m[1]]
    return f"Tconv{k}.{0 if m[2] == 'conv' else 1}.{m[3]}"


def official_file_state(model: Model) -> dict:
    state = {}
    for k, v in model.backbone.state_dict().items():
        state["module.backbone.module." + to_official(k)] = v.clone()
        if k.endswith("running_var"):
            state["module.backbone.module." + to_official(k)[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(7)
    state["module.head.module.fc.weight"] = model.roi_heads.fc.weight.detach().clone()
    return state


def test_known_key_answers():
    for d2, official in KNOWN.items():
        assert acar_backbone_to_d2(official) == d2
    assert acar_backbone_to_d2("Tconv3.weight") == "fuse.res3.conv.weight"  # R101 bare conv
    assert pyslowfast_to_d2("s5.pathway1_res2.branch2.b_bn.running_var") == "fast.res5.2.bn2.running_var"
    assert pyslowfast_to_d2("s3_fuse.conv_f2s.weight") == "fuse.res3.conv.weight"
    assert pyslowfast_to_d2("s4.pathway0_nonlocal3.conv_theta.bias") == "slow.res4.nonlocal3.conv_theta.bias"
    assert pyslowfast_to_d2("head.projection.weight") is None
    assert caffe2_to_d2("t_res4_5_branch2c_bn_subsample_bn_riv") == "fuse.res4.bn.running_var"
    assert caffe2_to_d2("t_res4_5_branch2c_bn_riv") == "fast.res4.5.bn3.running_var"
    assert caffe2_to_d2("res3_0_branch1_w") == "slow.res3.0.shortcut.weight"
    assert caffe2_to_d2("nonlocal_conv4_3_bn_s") == "slow.res4.nonlocal3.bn.weight"
    assert caffe2_to_d2("pred_w") is None


def test_official_file_roundtrip(tmp_path):
    src = Model()
    for p in src.parameters():
        torch.nn.init.normal_(p)
    for name, b in src.backbone.named_buffers():
        b.copy_(torch.rand_like(b) + 0.5)
    path = tmp_path / "ckpt_5.pth.tar"
    torch.save({"epoch": 5, "state_dict": official_file_state(src), "optimizer": {}}, path)
    result = convert_checkpoint_with_report(str(path))
    assert result.source == "acar"
    assert len(result.dropped) == sum(k.endswith("running_var") for k in src.backbone.state_dict())
    assert result.state.keys() == src.state_dict().keys()
    dst = Model()
    ACARCheckpointer(dst, strict=True).load(str(path))
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(src.backbone(x)["slow"], dst.backbone(x)["slow"])


def test_detectron2_file_passes_through(tmp_path):
    model = Model()
    path = tmp_path / "model_0000009.pth"
    ACARCheckpointer(model, save_dir=str(tmp_path)).save("model_0000009", iteration=9)
    assert detect_source(torch.load(path)) == "detectron2"
    other = Model()
    with torch.no_grad():
        other.roi_heads.fc.weight.zero_()
    extra = ACARCheckpointer(other, strict=True).load(str(path))
    assert extra["iteration"] == 9
    assert torch.equal(other.roi_heads.fc.weight, model.roi_heads.fc.weight)


def test_backbone_pretrain_file_with_batchnorm_model(tmp_path):
    # bare SlowFast keys (official backbone pretrain) into an nn.BatchNorm3d model: the missing
    # num_batches_tracked counters are not an error
    src = Model()
    state = {k[len("module.backbone.module."):]: v for k, v in official_file_state(src).items() if "backbone" in k}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "SLOWFAST_R50_K400.pth.tar"
    torch.save(state, path)
    assert detect_source(state) == "acar_backbone"
    dst = Model(norm="BN")
    with pytest.raises(CheckpointMismatchError, match=r"roi_heads\.fc\.weight"):
        ACARCheckpointer(dst, strict=True).load(str(path))  # head really missing
    ACARCheckpointer(dst, strict=False).load(str(path))  # lenient: only logs the head
    assert torch.equal(dst.backbone.slow.stem.conv.weight, src.backbone.slow.stem.conv.weight)


def test_unknown_key_raises_naming_key_and_file(tmp_path):
    state = official_file_state(Model())
    state["module.backbone.module.slow_res9.0.conv1.weight"] = torch.zeros(1)
    state["module.neck.something"] = torch.zeros(1)
    path = tmp_path / "bad.pth.tar"
    torch.save(state, path)
    with pytest.raises(KeyError) as e:
        convert_checkpoint(str(path))
    assert isinstance(e.value, UnknownKeysError)
    msg = str(e.value)
    assert "slow_res9.0.conv1.weight" in msg and "module.neck.something" in msg and "bad.pth.tar" in msg
    with pytest.raises(UnknownKeysError, match="bad.pth.tar"):
        ACARCheckpointer(Model()).load(str(path))


def test_wrong_shape_strict_raises_and_lenient_logs(tmp_path):
    state = official_file_state(Model())
    state["module.backbone.module.slow_conv1.weight"] = torch.zeros(8, 3, 3, 7, 7)
    path = tmp_path / "mismatch.pth.tar"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as e:
        ACARCheckpointer(Model(), strict=True).load(str(path))
    msg = str(e.value)
    assert "backbone.slow.stem.conv.weight" in msg and "(8, 3, 3, 7, 7)" in msg and "mismatch.pth.tar" in msg
    model = Model()
    before = model.backbone.slow.stem.conv.weight.clone()
    ACARCheckpointer(model, strict=False).load(str(path))  # logged, tensor left untouched
    assert torch.equal(model.backbone.slow.stem.conv.weight, before)


def test_truncated_and_garbage_files(tmp_path):
    path = tmp_path / "full.pth.tar"
    torch.save(official_file_state(Model()), path)
    data = path.read_bytes()
    cut = tmp_path / "truncated.pth.tar"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.pth.tar"):
        convert_checkpoint(str(cut))
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="garbage.pkl"):
        ACARCheckpointer(Model()).load(str(garbage))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        convert_checkpoint(str(tmp_path / "missing.pth"))
    weird = tmp_path / "weird.pth"
    torch.save({"foo.bar": torch.zeros(1)}, weird)
    with pytest.raises(ValueError, match="cannot tell the format"):
        convert_checkpoint(str(weird))


def test_fuse_bn_into_plain_conv_fusion_is_an_error(tmp_path):
    # PySlowFast R101-style file (laterals with BN) into the official R101 layout (bare conv)
    src = Model()
    model_state = {}
    for k, v in src.backbone.state_dict().items():
        model_state[k] = v
    pyslowfast = {}
    inv = {"stem": 1, "res2": 2, "res3": 3, "res4": 4}
    for k, v in model_state.items():
        if k.startswith("fuse."):
            _, s, kind, leaf = k.split(".")
            pyslowfast[f"s{inv[s]}_fuse.{'conv_f2s' if kind == 'conv' else 'bn'}.{leaf}"] = v
    path = tmp_path / "r101.pyth"
    torch.save({"model_state": pyslowfast}, path)
    with pytest.raises(ValueError, match="plain-conv fusion"):
        convert_checkpoint(str(path), "pyslowfast", fusion_only_conv=True)
    with pytest.raises(ValueError, match="plain-conv fusion"):
        ACARCheckpointer(Model(fusion_only_conv=True)).load(str(path))
    # the same file is fine for a conv+BN fusion target
    assert len(convert_checkpoint(str(path), fusion_only_conv=False)) == len(pyslowfast)


def test_caffe2_blob_with_fewer_dims_is_expanded(tmp_path):
    model = Model()
    w = torch.randn_like(model.backbone.fuse["stem"].conv.weight)  # (C_out, C_fast, 7, 1, 1)
    blobs = {"t_pool1_subsample_w": w[..., 0, 0].numpy(), "pred_w": w.numpy()}
    path = tmp_path / "partial.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f)
    ACARCheckpointer(model).load(str(path))
    assert torch.equal(model.backbone.fuse["stem"].conv.weight, w)
