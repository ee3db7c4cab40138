"""
Parity of the SlowFast backbone with the official ACAR-Net R50 (golden case public_r50_depth2),
through all three foreign loaders: official ACAR ``.pth.tar``, PySlowFast ``.pyth`` and Caffe2
``.pkl`` built from the same golden weights with the reference mapping TSV.
"""
import csv
import pickle

import pytest
import torch

from acar_d2.checkpoint import ACARCheckpointer, convert_checkpoint, convert_file
from acar_d2.modeling.backbone import SlowFast
from tests.reference_utils import load_golden_case, reference_dir

ATOL = RTOL = 1e-4  # golden-case tolerance (tests/golden/README.md), float32 CPU


def official_r50() -> SlowFast:
    """SlowFast configured as the official ACAR-Net R50 backbone (case.json model_config)."""
    return SlowFast(
        depth=50, width=64, alpha=4, beta_inv=8, fusion_conv_channel_ratio=2,
        fusion_kernel_size=7, fusion_only_conv=False, slow_full_span=True,
        res5_dilation=2, norm="FrozenStatsBN",
    ).eval()


class _Wrapper(torch.nn.Module):
    """Stands in for the meta-architecture: the backbone lives at ``model.backbone``."""

    def __init__(self):
        super().__init__()
        self.backbone = official_r50()


@pytest.fixture(scope="module")
def golden():
    return load_golden_case()


@pytest.fixture(scope="module")
def mapping_rows():
    path = reference_dir() / "acar_official" / "acar_r50_backbone_mapping.tsv"
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _backbone_only(converted):
    return {k[len("backbone."):]: v for k, v in converted.items() if k.startswith("backbone.")}


def _check_features(out, outputs, tag):
    for name in ("slow", "fast"):
        ref = outputs[f"{name}_features"]
        err = (out[name] - ref).abs().max().item()
        print(f"[{tag}] {name} features {tuple(out[name].shape)}: max abs err {err:.3g}")
        assert out[name].shape == ref.shape
        assert torch.allclose(out[name], ref, atol=ATOL, rtol=RTOL), (tag, name, err)


def _run(model, inputs):
    with torch.no_grad():
        return model(inputs["clips"])


def test_slow_frame_indices(golden):
    _, inputs, _ = golden
    assert official_r50().slow_frame_indices(32).tolist() == inputs["slow_frame_indices"].tolist()
    assert inputs["slow_frame_indices"].tolist() == [0, 4, 8, 13, 17, 22, 26, 31]


def test_official_acar_checkpoint_parity(golden):
    state, inputs, outputs = golden
    converted = convert_checkpoint(state, source="auto")
    head = sorted(k for k in converted if k.startswith("roi_heads."))
    assert "roi_heads.conv_reduce.weight" in head and "roi_heads.hr2o.1.conv_q.weight" in head
    model = official_r50()
    result = model.load_state_dict(_backbone_only(converted), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    _check_features(_run(model, inputs), outputs, "acar")


def test_convert_save_load_roundtrip(golden, tmp_path):
    state, inputs, outputs = golden
    src = tmp_path / "AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar"
    torch.save(state, src)  # flat model-zoo form, module.backbone.module.* keys
    dst = tmp_path / "converted.pth"
    result = convert_file(str(src), str(dst), "auto")
    assert result.source == "acar"
    assert all(k.endswith("num_batches_tracked") for k in result.dropped)
    saved = torch.load(dst, weights_only=True)  # tensors only: plain detectron2 can read it
    assert saved["__author__"] == "acar_d2 convert_checkpoint"
    # backbone only: the head keys would be unexpected in the wrapper model
    saved["model"] = {k: v for k, v in saved["model"].items() if k.startswith("backbone.")}
    torch.save(saved, dst)

    direct = official_r50()
    direct.load_state_dict(_backbone_only(convert_checkpoint(str(src))))
    fresh = _Wrapper().eval()
    ACARCheckpointer(fresh, strict=True).load(str(dst))
    a, b = _run(direct, inputs), _run(fresh.backbone, inputs)
    assert torch.equal(a["slow"], b["slow"]) and torch.equal(a["fast"], b["fast"])
    _check_features(b, outputs, "roundtrip")


def _acar_backbone_state(state):
    prefix = "module.backbone.module."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_pyslowfast_pyth_parity(golden, mapping_rows, tmp_path):
    state, inputs, outputs = golden
    acar = _acar_backbone_state(state)
    model_state = {r["pyslowfast_key"]: acar[r["acar_backbone_key"]] for r in mapping_rows}
    g = torch.Generator().manual_seed(0)
    model_state["head.projection.weight"] = torch.randn(400, 2304, generator=g)
    model_state["head.projection.bias"] = torch.zeros(400)
    path = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"epoch": 196, "model_state": model_state, "optimizer_state": {}, "cfg": "x: 1"}, path)
    model = _Wrapper().eval()
    ACARCheckpointer(model, strict=True).load(str(path))
    _check_features(_run(model.backbone, inputs), outputs, "pyslowfast")


def test_caffe2_pkl_parity(golden, mapping_rows, tmp_path):
    state, inputs, outputs = golden
    acar = _acar_backbone_state(state)
    blobs = {
        r["caffe2_blob"]: acar[r["acar_backbone_key"]].numpy()
        for r in mapping_rows
        if r["caffe2_blob"] != "-"
    }
    assert any(name.endswith("_bn_riv") for name in blobs)
    blobs["pred_w"] = torch.zeros(400, 2304).numpy()
    blobs["pred_b"] = torch.zeros(400).numpy()
    blobs["conv1_w_momentum"] = blobs["conv1_w"] * 0
    blobs["lr"] = torch.ones(1).numpy()
    path = tmp_path / "SLOWFAST_8x8_R50.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    model = _Wrapper().eval()
    ACARCheckpointer(model, strict=True).load(str(path))
    _check_features(_run(model.backbone, inputs), outputs, "caffe2")
