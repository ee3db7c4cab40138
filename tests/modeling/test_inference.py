"""
Inference transforms (``acar_d2.modeling.inference``, ``MODEL.INFERENCE``): BN folding and
channels-last keep the official-parity logits (golden case ``public_r50_depth2``) within 1e-4,
``ActionPredictor(cfg).model`` is the transformed model and ``MODEL.INFERENCE.TRANSFORMS False``
keeps it plain, bf16 drifts by a bounded amount and is refused on a CPU without native bf16,
the person detector's FrozenBN folds too, ``build_model`` stays the trainable model.
"""
import copy

import pytest
import torch
from detectron2.layers import Conv2d as D2Conv2d
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import build_model
from torch import nn

import acar_d2.modeling.inference as inference
from acar_d2.config import load_detector_config
from acar_d2.engine import ActionPredictor, setup_cfg
from acar_d2.modeling.backbone import SlowFast
from acar_d2.modeling.backbone.norm import FrozenStatsBatchNorm3d
from acar_d2.modeling.inference import check_precision, fold_batchnorm, prepare_for_inference
from acar_d2.modeling.meta_arch.acar_net import ACARNet
from tests.engine.test_eval_only_golden import golden_inputs
from tests.reference_utils import REPO_ROOT, build_golden_state_dict, golden_case_dir

CONFIG = str(REPO_ROOT / "configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml")
TINY_DETECTOR = str(REPO_ROOT / "configs/Synthetic/person_detector/faster_rcnn_R18_tiny_person.yaml")
ATOL = RTOL = 1e-4  # golden-case tolerance (tests/golden/README.md)
# bf16 keeps 8 bits of mantissa: the golden logits (|logit| < ~3) move by ~1e-2; measured 1.3e-2
# on the golden clip (docs/DEMO.md "Speed"), bound with margin; a wrong cast is >> 0.1.
BF16_MAX_DRIFT = 0.06


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """(weights file of the seeded official checkpoint, golden inputs, golden outputs)."""
    case_dir = golden_case_dir()
    weights = tmp_path_factory.mktemp("golden") / "AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar"
    torch.save(build_golden_state_dict(case_dir), weights)
    outputs = torch.load(case_dir / "outputs.pt", weights_only=False)
    return str(weights), golden_inputs(case_dir), outputs


def golden_cfg(weights: str, *opts):
    # Official class order: the 13 pose classes are indices 0..12 (docs/CHECKPOINTS.md).
    return setup_cfg(CONFIG, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", weights,
                              "MODEL.ACTION_HEAD.POSE_CLASS_INDICES", str(list(range(13)))]
                     + list(opts))


def _logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        inst = model(inputs)[0]["instances"]
    assert inst.action_logits.dtype == torch.float32 and inst.action_scores.dtype == torch.float32
    return inst.action_logits


def _count(model, cls) -> int:
    return sum(isinstance(m, cls) for m in model.modules())


def test_predictor_model_is_folded_and_matches_official(golden):
    weights, inputs, outputs = golden
    model = ActionPredictor(golden_cfg(weights)).model
    assert type(model) is ACARNet
    assert _count(model, FrozenStatsBatchNorm3d) == 0, "backbone BNs left unfolded"
    stem = model.backbone.slow.stem
    assert isinstance(stem.bn, nn.Identity) and stem.conv.bias is not None
    assert stem.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert _count(model, nn.Conv3d) == _count(model, inference.OneDNNConv3d) > 100
    got = _logits(model, inputs)
    err = (got - outputs["logits"]).abs().max().item()
    assert torch.allclose(got, outputs["logits"], atol=ATOL, rtol=RTOL), err


def test_transforms_off_gives_the_plain_model(golden):
    weights, inputs, outputs = golden
    model = ActionPredictor(golden_cfg(weights, "MODEL.INFERENCE.TRANSFORMS", "False")).model
    plain = build_model(golden_cfg(weights))
    assert _count(model, FrozenStatsBatchNorm3d) == _count(plain, FrozenStatsBatchNorm3d) > 100
    assert model.backbone.slow.stem.conv.bias is None
    assert torch.allclose(_logits(model, inputs), outputs["logits"], atol=ATOL, rtol=RTOL)


def test_bf16_drift_is_bounded(golden, monkeypatch):
    # bf16 numerics are the same with native or emulated instructions: let any CPU run the test
    monkeypatch.setattr(inference, "_cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    weights, inputs, outputs = golden
    model = ActionPredictor(golden_cfg(weights, "MODEL.INFERENCE.PRECISION", "bf16")).model
    drift = (_logits(model, inputs) - outputs["logits"]).abs().max().item()
    print(f"bf16 max abs logit drift vs official fp32: {drift:.3e}")
    assert 1e-4 < drift < BF16_MAX_DRIFT, drift  # really bf16, and close
    # the autocast is the model's own: outside a call nothing is left in bf16 mode
    assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("flags", [{"avx512f", "avx2"}, None])
def test_bf16_refused_without_native_bf16(golden, monkeypatch, flags):
    monkeypatch.setattr(inference, "_cpu_flags", lambda: flags)
    with pytest.raises(ValueError, match=r"^MODEL.INFERENCE.PRECISION bf16: this CPU has no "
                                         r"native bf16 .*use fp32$"):
        ActionPredictor(golden_cfg(golden[0], "MODEL.INFERENCE.PRECISION", "bf16"))


def test_precision_values_checked():
    with pytest.raises(ValueError, match="fp16 is for CUDA devices"):
        check_precision("fp16", "cpu")
    with pytest.raises(ValueError, match=r"must be one of \['fp32', 'bf16', 'fp16'\], got 'int8'"):
        check_precision("int8", "cpu")
    check_precision("fp32", "cpu")


def _random_statistics(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith(("running_mean", "bias")) and buf.is_floating_point():
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
            elif name.endswith(("running_var", "weight")) and buf.is_floating_point():
                buf.copy_(torch.rand(buf.shape, generator=g) * 0.5 + 0.75)
        for name, p in model.named_parameters():
            if p.dim() == 1:  # norm scale / shift, conv biases
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (name.endswith("weight")))


def _assert_float_noise(got: dict, ref: dict) -> None:
    """Equal up to float32 rounding: max error <= 1e-5 of the largest magnitude (a wrong fold,
    e.g. a missing shift or the variance without eps, is >= 1e-3 of it)."""
    for k in ref:
        rel = ((got[k] - ref[k]).abs().max() / ref[k].abs().max()).item()
        assert rel < 1e-5, (k, rel)


@pytest.mark.parametrize("norm", ["FrozenStatsBN", "FrozenBN", "BN"])
def test_fold_keeps_backbone_outputs(norm):
    torch.manual_seed(0)
    model = SlowFast(depth=18, width=8, norm=norm,
                     nonlocal_locations=((), (0,), (), ())).eval()
    _random_statistics(model)
    clip = torch.randn(1, 3, 8, 48, 64)
    with torch.no_grad():
        ref = model(clip)
        names = {n for n, _ in model.named_parameters() if "conv" in n or "shortcut." in n}
        # 4 stages x 2 blocks x 3 convs (+1 shortcut per stage) per pathway, 2 stems, 4 laterals,
        # 1 non-local: every norm of the backbone
        assert fold_batchnorm(model) == 2 * (4 * 2 * 3 + 4) + 2 + 4 + 1
        got = model(clip)
    assert not [m for m in model.modules() if isinstance(m, inference._FOLDABLE_NORMS)]
    assert names <= {n for n, _ in model.named_parameters()}  # same names, biases added
    _assert_float_noise(got, ref)


def test_fold_refuses_batch_statistics():
    model = SlowFast(depth=18, width=8, norm="BN").train()
    with pytest.raises(ValueError, match="BatchNorm3d normalises with batch statistics"):
        fold_batchnorm(model)


def test_person_detector_folds():
    # The detector of the demo configs: detectron2's ResNet with FrozenBN (COCO R50-FPN); here
    # the tiny synthetic detector with that norm.
    det_cfg = load_detector_config(TINY_DETECTOR).clone()
    det_cfg.defrost()
    det_cfg.MODEL.RESNETS.NORM, det_cfg.MODEL.FPN.NORM, det_cfg.MODEL.DEVICE = "FrozenBN", "", "cpu"
    torch.manual_seed(0)
    det = build_model(det_cfg).eval()
    frozen = _count(det, FrozenBatchNorm2d)
    assert frozen > 10, frozen
    _random_statistics(det)
    image = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        ref = det.backbone(image)
        prepare_for_inference(det)
        got = det.backbone(image)
    assert _count(det, FrozenBatchNorm2d) == 0
    assert all(m.norm is None for m in det.modules() if isinstance(m, D2Conv2d))
    convs = [m for m in det.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    _assert_float_noise(got, ref)


def test_build_model_stays_trainable():
    cfg = setup_cfg(CONFIG, ["MODEL.DEVICE", "cpu", "MODEL.SLOWFAST.DEPTH", "18",
                             "MODEL.SLOWFAST.WIDTH", "8", "MODEL.INFERENCE.PRECISION", "bf16"])
    model = build_model(cfg)
    assert model.training and _count(model, FrozenStatsBatchNorm3d) > 0
    assert not model._forward_pre_hooks and model.backbone.slow.stem.conv.bias is None


@pytest.mark.parametrize("channels, kernel, stride", [(8, (1, 3, 3), 1), (16, (3, 1, 1), 1),
                                                      (3, (5, 7, 7), (1, 2, 2))])
def test_onednn_conv3d_equals_conv3d(channels, kernel, stride):
    # Fast-pathway sizes: PyTorch's own heuristic sends these to slow_conv3d; OneDNNConv3d runs
    # oneDNN and must give the same numbers, in both layouts.
    torch.manual_seed(0)
    conv = nn.Conv3d(channels, 8, kernel, stride=stride, padding=tuple(k // 2 for k in kernel))
    x = torch.randn(1, channels, 8, 20, 20)
    with torch.no_grad():
        ref = conv(x)
        assert inference.use_onednn_conv3d(conv) == 1 and type(conv) is inference.OneDNNConv3d
        for layout in (torch.contiguous_format, torch.channels_last_3d):
            conv.weight.data = conv.weight.data.contiguous(memory_format=layout)
            got = conv(x.contiguous(memory_format=layout))
            _assert_float_noise({"y": got}, {"y": ref})


def test_onednn_conv3d_leaves_autocast_to_conv3d(monkeypatch):
    # under autocast (bf16) the convolution must go through aten::conv3d, where autocast casts
    calls = []
    monkeypatch.setattr(torch.ops.aten, "mkldnn_convolution",
                        lambda *a: calls.append(1) or torch.zeros(1), raising=False)
    conv = nn.Conv3d(4, 4, 1)
    inference.use_onednn_conv3d(conv)
    x = torch.randn(1, 4, 2, 4, 4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    assert out.dtype == torch.bfloat16 and out.shape == (1, 4, 2, 4, 4) and not calls
    with torch.no_grad():
        conv(x)
    assert calls == [1]


@pytest.mark.parametrize("shape", [(1, 2048, 8, 4, 5), (2, 32, 32, 3, 7)])
def test_temporal_mean_equals_mean_over_time_in_both_layouts(shape):
    """The heads' temporal mean is ``mean(dim=2)``: bit for bit on contiguous activations (the
    training path), within float rounding on channels-last ones (the inference path, read in
    memory order; ``mean(dim=2)`` there differs from the contiguous one by as much), and its result
    is contiguous (what the heads' 2D convolutions were measured fastest on)."""
    from acar_d2.modeling.roi_heads.layout import temporal_mean

    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(temporal_mean(x), x.mean(dim=2))
    out = temporal_mean(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out, x.mean(dim=2), rtol=0, atol=1e-6)
    assert out.is_contiguous() and not torch.equal(out, torch.zeros_like(out))


def test_compile_keeps_the_backbone_outputs():
    """``MODEL.INFERENCE.COMPILE`` (``inference_options`` -> ``prepare_for_inference``): the
    backbone runs compiled (inductor, frozen weights) with the outputs of the transformed model up
    to float rounding; the module tree and the parameters stay."""
    torch.manual_seed(0)
    holder = nn.Module()
    holder.backbone = SlowFast(depth=18, width=8, norm="FrozenStatsBN").eval()
    _random_statistics(holder.backbone)
    clip = torch.randn(1, 3, 8, 48, 64)
    reference = copy.deepcopy(holder)
    prepare_for_inference(reference)
    cfg = setup_cfg(None, ["MODEL.DEVICE", "cpu", "MODEL.INFERENCE.COMPILE", "True"])
    options = inference.inference_options(cfg)
    assert options["compile"] is True
    prepare_for_inference(holder, **options)
    # the compiled forward sits on the instance (the reference keeps its class's forward)
    assert "forward" in vars(holder.backbone) and "forward" not in vars(reference.backbone)
    assert sorted(n for n, _ in holder.named_parameters()) == sorted(
        n for n, _ in reference.named_parameters())
    with torch.no_grad():
        ref, got = reference.backbone(clip), holder.backbone(clip)
    assert set(got) == set(ref)
    _assert_float_noise(got, ref)


def test_predictor_keeps_freed_memory_unless_told_not_to(golden, monkeypatch):
    """The inference path on a CPU asks for freed memory to be kept
    (``MODEL.INFERENCE.KEEP_FREED_MEMORY``, default True); with the key off it does not."""
    calls = []
    monkeypatch.setattr(inference.cpu_memory, "keep_freed_memory", lambda: calls.append(1))
    weights, inputs, outputs = golden
    model = ActionPredictor(golden_cfg(weights)).model
    assert calls == [1] and _count(model, inference.OneDNNConv3d) > 100
    ActionPredictor(golden_cfg(weights, "MODEL.INFERENCE.KEEP_FREED_MEMORY", "False"))
    assert calls == [1]
