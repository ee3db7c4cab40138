"""
Inference transforms: what makes a trained model fast at test time without changing what it
computes beyond float rounding (fp32), or with a bounded drift (bf16 / fp16).

``build_model`` returns the plain, trainable model; the inference path (``ActionPredictor``,
``VideoActionPredictor``, the demo, ``tools/train_net.py --eval-only``) passes it through
:func:`prepare_for_inference`, controlled by ``cfg.MODEL.INFERENCE`` (``add_inference_config``):

* **BN folding** (``TRANSFORMS True``): a normalisation with stored statistics that follows a
  convolution is an affine map per output channel, ``y = conv(x) * s + b`` with
  ``s = weight / sqrt(running_var + eps)`` and ``b = bias - running_mean * s``; it is moved into
  the convolution (weight scaled by ``s`` per output channel, bias ``b``) and the norm becomes
  ``nn.Identity``. The module tree and parameter names stay those of the plain model; the norms
  folded are the backbone's (:class:`FrozenStatsBatchNorm3d`, :class:`FrozenBatchNorm3d`,
  ``nn.BatchNorm3d`` in eval mode) and the person detector's (detectron2 ``FrozenBatchNorm2d`` /
  ``BatchNorm2d`` inside ``detectron2.layers.Conv2d``). A folded model cannot train (its norms
  are gone).
* **channels-last convolutions** (with ``TRANSFORMS``): the ``Conv3d`` weights stored
  ``channels_last_3d`` and the person detector's ``Conv2d`` weights ``channels_last``, which
  oneDNN runs faster on CPUs; activations follow.
* **oneDNN for every 3D convolution** (with ``TRANSFORMS``): PyTorch sends small CPU ``Conv3d``
  calls (SlowFast's fast pathway) to a slow reference kernel; :class:`OneDNNConv3d` does not.
* **freed memory kept** (``KEEP_FREED_MEMORY``, on a CPU): the process keeps freed memory for
  the next forward instead of faulting fresh zeroed pages in for every activation
  (:mod:`acar_d2.utils.cpu_memory`; process-wide).
* **precision** (``PRECISION "fp32" | "bf16" | "fp16"``): autocast around the whole model (action
  model and person detector together); the outputs come back in float32. bf16 on a CPU needs the
  native instructions (AVX512-BF16 or AMX; without them oneDNN emulates bf16 and it is slower than
  fp32), checked by :func:`check_precision`; fp16 is for CUDA only.

* **compilation** (``COMPILE``, off by default): the action backbone through ``torch.compile``
  (inductor with ``freezing``: weights become constants, oneDNN convolutions prepacked);
  :func:`compile_backbone`.

Each was measured on its own and together (tools/benchmarks/benchmark_inference.py, docs/DEMO.md "Speed of
the inference paths"): channels-last pays only once the norms are folded, so ``TRANSFORMS`` applies
all three; ``torch.compile`` adds ~10% in fp32 at the price of a first call that compiles, so it is
opt-in (see docs/DEMO.md).
"""
import logging
from typing import Any, Optional, Tuple

import torch
from detectron2.layers import FrozenBatchNorm2d
from detectron2.layers import Conv2d as D2Conv2d
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import Boxes, Instances
from torch import nn

from ..utils import cpu_memory
from .backbone.nonlocal_block import NonLocalBlock3d
from .backbone.norm import FrozenBatchNorm3d, FrozenStatsBatchNorm3d
from .backbone.resnet3d import Bottleneck3d, LateralFusion, Stem3d

__all__ = [
    "PRECISIONS",
    "fold_batchnorm",
    "to_channels_last",
    "OneDNNConv3d",
    "use_onednn_conv3d",
    "cpu_has_native_bf16",
    "check_precision",
    "autocast_model",
    "compile_backbone",
    "prepare_for_inference",
    "inference_options",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# (convolution, norm) attribute pairs of the modules whose forward applies the norm directly to
# the convolution's output (``norm(conv(x))``, nothing in between); other modules are left alone.
CONV_NORM_PAIRS = {
    Bottleneck3d: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"),
                   ("shortcut", "shortcut_bn")),
    Stem3d: (("conv", "bn"),),
    LateralFusion: (("conv", "bn"),),
    NonLocalBlock3d: (("conv_out", "bn"),),
}
_FOLDABLE_NORMS = (FrozenBatchNorm3d, FrozenStatsBatchNorm3d, nn.BatchNorm3d, FrozenBatchNorm2d,
                   nn.BatchNorm2d)


def _norm_scale_shift(norm: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """(C,) scale and shift of a stored-statistics norm: ``norm(x) = x * scale + shift``."""
    if isinstance(norm, nn.modules.batchnorm._BatchNorm) and not isinstance(
            norm, FrozenStatsBatchNorm3d):  # the latter uses its statistics in train mode too
        if norm.training or not norm.track_running_stats:
            raise ValueError(f"{type(norm).__name__} normalises with batch statistics here "
                             "(train mode or no running statistics): it cannot be folded")
    weight = norm.weight if norm.weight is not None else torch.ones_like(norm.running_mean)
    bias = norm.bias if norm.bias is not None else torch.zeros_like(norm.running_mean)
    # float64 for the product: the folded weights round once, like the unfolded computation
    scale = weight.double() * (norm.running_var.double() + norm.eps).rsqrt()
    shift = bias.double() - norm.running_mean.double() * scale
    return scale, shift


@torch.no_grad()
def _fold_into_conv(conv: nn.Module, norm: nn.Module) -> None:
    """Give ``conv`` (Conv2d / Conv3d) the weight and bias of ``norm(conv(x))``."""
    scale, shift = _norm_scale_shift(norm)
    w = conv.weight
    view = (-1,) + (1,) * (w.dim() - 1)
    new_w = (w.double() * scale.view(view)).to(w.dtype)
    new_b = shift if conv.bias is None else conv.bias.double() * scale + shift
    conv.weight = nn.Parameter(new_w, requires_grad=False)
    conv.bias = nn.Parameter(new_b.to(w.dtype), requires_grad=False)


def fold_batchnorm(model: nn.Module) -> int:
    """
    Fold every stored-statistics norm that directly follows a convolution into that convolution,
    in place: the convolution gets the folded weight and a bias, the norm becomes ``nn.Identity``
    (``detectron2.layers.Conv2d.norm`` becomes None). Same outputs up to float rounding (~1e-6
    relative).

    Args:
        model (nn.Module): in eval mode (an ``nn.BatchNorm`` in train mode is refused).
    Returns:
        int: the number of norms folded.
    """
    count = 0
    for module in model.modules():
        for conv_name, norm_name in CONV_NORM_PAIRS.get(type(module), ()):
            norm = getattr(module, norm_name, None)
            if isinstance(norm, _FOLDABLE_NORMS):
                _fold_into_conv(getattr(module, conv_name), norm)
                setattr(module, norm_name, nn.Identity())
                count += 1
        if isinstance(module, D2Conv2d) and isinstance(module.norm, _FOLDABLE_NORMS):
            _fold_into_conv(module, module.norm)
            module.norm = None
            count += 1
    return count


def to_channels_last(model: nn.Module) -> int:
    """
    Store the convolution weights channels-last, in place: every ``Conv3d`` in
    ``torch.channels_last_3d`` (N, T, H, W, C order) and every ``Conv2d`` of a detectron2
    detector (a ``GeneralizedRCNN``: the person detector) in ``torch.channels_last``. oneDNN then
    runs them channels-last and their outputs stay channels-last from the first convolution on
    (same values; measured in tools/benchmarks/benchmark_inference.py and
    benchmark_demo_speed.py). The 2D convolutions of the action heads are left alone: their
    inputs are RoI features, and what follows them (attention over actors) wants the standard
    layout.

    Returns:
        int: the number of convolutions converted.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
            count += 1
    for detector in [m for m in model.modules() if isinstance(m, GeneralizedRCNN)]:
        for module in detector.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
                count += 1
    return count


def _capturing() -> bool:
    """Whether the forward is being traced or compiled (``torch.compile``, ``torch.jit.trace``,
    ONNX export): those see ``aten::conv3d``, which they know how to handle."""
    return (torch.compiler.is_compiling() or torch.jit.is_tracing()
            or torch.onnx.is_in_onnx_export())


class OneDNNConv3d(nn.Conv3d):
    """
    ``nn.Conv3d`` that runs every float32 CPU convolution through oneDNN.

    PyTorch picks oneDNN for a CPU ``Conv3d`` only above a size heuristic (batch x channels x T x H
    of the input > 20480 or a kernel wider than 3); below it, e.g. SlowFast's fast pathway (8-32
    channels, 1 x 3 x 3 kernels), it falls back to its reference ``slow_conv3d`` (an unfold + GEMM,
    contiguous layout only, so channels-last activations are copied in and out): 4-40x slower
    there than oneDNN on the same shapes (tools/benchmarks/benchmark_inference.py). Same
    parameters and outputs (float rounding); anything else (another device or dtype, autocast
    active, string padding, tracing / compiling / ONNX export) takes ``nn.Conv3d``'s own path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dtype == torch.float32 and self.padding_mode == "zeros"
                and not isinstance(self.padding, str)
                and not torch.is_autocast_enabled("cpu") and not _capturing()):
            return torch.ops.aten.mkldnn_convolution(x, self.weight, self.bias, self.padding,
                                                     self.stride, self.dilation, self.groups)
        return super().forward(x)


def use_onednn_conv3d(model: nn.Module) -> int:
    """
    Make every plain ``nn.Conv3d`` of ``model`` an :class:`OneDNNConv3d`, in place (the class of
    each module is swapped: parameters, names and hooks stay). A no-op where PyTorch has no
    oneDNN (``torch.backends.mkldnn.is_available()`` False).

    Returns:
        int: the number of convolutions changed.
    """
    if not torch.backends.mkldnn.is_available():
        return 0
    count = 0
    for module in model.modules():
        if type(module) is nn.Conv3d:
            module.__class__ = OneDNNConv3d
            count += 1
    return count


def _cpu_flags() -> Optional[set]:
    """The CPU feature flags of /proc/cpuinfo (None where there is no such file)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return set()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo)."""
    flags = _cpu_flags()
    return bool(flags and {"avx512_bf16", "amx_bf16"} & flags)


def check_precision(precision: str, device: str) -> None:
    """
    Refuse a precision the device cannot run fast.

    Args:
        precision (str): ``MODEL.INFERENCE.PRECISION``: "fp32", "bf16" or "fp16".
        device (str): ``MODEL.DEVICE``.
    Raises:
        ValueError: unknown precision, fp16 on a CPU, bf16 on a CPU without native bf16, bf16 on
            a GPU without it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"MODEL.INFERENCE.PRECISION must be one of {list(PRECISIONS)}, "
                         f"got {precision!r}")
    if precision == "fp32":
        return
    on_cpu = torch.device(device).type == "cpu"
    if precision == "fp16" and on_cpu:
        raise ValueError("MODEL.INFERENCE.PRECISION fp16 is for CUDA devices; on a CPU use bf16 "
                         "(where the CPU has native bf16) or fp32")
    if precision == "bf16" and on_cpu and not cpu_has_native_bf16():
        raise ValueError("MODEL.INFERENCE.PRECISION bf16: this CPU has no native bf16 "
                         "(no avx512_bf16 / amx_bf16 in /proc/cpuinfo), where bf16 is emulated "
                         "and slower than fp32; use fp32")
    if precision == "bf16" and not on_cpu and not torch.cuda.is_bf16_supported():
        raise ValueError(f"MODEL.INFERENCE.PRECISION bf16: {device} does not support bf16; "
                         "use fp16 or fp32")


def _to_float32(x: Any) -> Any:
    """``x`` with every floating tensor (inside lists, tuples, dicts, Instances, Boxes) float32."""
    if isinstance(x, torch.Tensor):
        return x.float() if x.is_floating_point() and x.dtype != torch.float32 else x
    if isinstance(x, Boxes):
        return Boxes(_to_float32(x.tensor))
    if isinstance(x, Instances):
        out = Instances(x.image_size)
        for k, v in x.get_fields().items():
            out.set(k, _to_float32(v))
        return out
    if isinstance(x, dict):
        return {k: _to_float32(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_float32(v) for v in x)
    return x


class _AutocastHooks:
    """Forward pre/post hooks that run a module's forward under ``torch.autocast`` and return its
    outputs in float32 (the post hook runs even when the forward raises)."""

    def __init__(self, device_type: str, dtype: torch.dtype):
        self.device_type, self.dtype = device_type, dtype
        self._active = []

    def enter(self, module, args):
        ctx = torch.autocast(self.device_type, dtype=self.dtype)
        ctx.__enter__()
        self._active.append(ctx)

    def exit(self, module, args, output):
        self._active.pop().__exit__(None, None, None)
        return _to_float32(output)


def autocast_model(model: nn.Module, precision: str, device: str) -> nn.Module:
    """
    Run ``model``'s forward under autocast to ``precision`` ("bf16" / "fp16"; "fp32": unchanged),
    with float32 outputs, in place (forward hooks; the model keeps its class and inputs).

    Returns:
        nn.Module: ``model``.
    """
    check_precision(precision, device)
    if precision == "fp32":
        return model
    hooks = _AutocastHooks(torch.device(device).type, _DTYPES[precision])
    model.register_forward_pre_hook(hooks.enter)
    model.register_forward_hook(hooks.exit, always_call=True)
    return model


def compile_backbone(model: nn.Module) -> nn.Module:
    """
    Run ``model.backbone``'s forward through ``torch.compile`` (inductor, ``freezing``: its weights
    become constants of the compiled code), in place; the module tree, parameters and inputs stay.
    The first call of each clip size compiles (seconds to minutes); gradients are not supported.

    Returns:
        nn.Module: ``model``.
    """
    import torch._inductor.config as inductor_config

    backbone = model.backbone
    compiled = torch.compile(backbone.forward, dynamic=False)

    def forward(*args, **kwargs):
        # freezing is read when a call compiles; ``torch.compile(options={"freezing": True})``
        # does not reach it (measured: no faster than without freezing), a scoped patch does
        with inductor_config.patch(freezing=True):
            return compiled(*args, **kwargs)

    backbone.forward = forward
    return model


def prepare_for_inference(model: nn.Module, *, fold_bn: bool = True, channels_last: bool = True,
                          precision: str = "fp32", device: str = "cpu",
                          compile: bool = False, keep_freed_memory: bool = False) -> nn.Module:
    """
    The inference transforms of this module applied to ``model`` (in place; it is put in eval
    mode and its parameters stop requiring gradients).

    Args:
        model (nn.Module): a plain model from ``build_model``, weights loaded.
        fold_bn (bool): fold stored-statistics norms into the convolutions (:func:`fold_batchnorm`).
        channels_last (bool): with ``fold_bn``, the 3D convolutions and the detector's 2D
            convolutions channels-last (:func:`to_channels_last`), and every 3D convolution on
            oneDNN (:func:`use_onednn_conv3d`).
        precision (str): "fp32", "bf16" or "fp16" (:func:`autocast_model`).
        device (str): the model's device (``MODEL.DEVICE``), for the precision check.
        compile (bool): :func:`compile_backbone` (a model with a ``backbone``).
        keep_freed_memory (bool): on a CPU, keep the process's freed memory for reuse
            (:func:`acar_d2.utils.cpu_memory.keep_freed_memory`; process-wide).
    Returns:
        nn.Module: ``model``, same class and inputs.
    """
    check_precision(precision, device)
    model.eval()
    model.requires_grad_(False)
    if fold_bn:
        n = fold_batchnorm(model)
        c = to_channels_last(model) if channels_last else 0
        o = use_onednn_conv3d(model)
        logger.info("Inference transforms: %d norms folded into their convolutions, %d "
                    "convolutions channels-last, %d 3D convolutions on oneDNN for every shape",
                    n, c, o)
    if keep_freed_memory and torch.device(device).type == "cpu":
        cpu_memory.keep_freed_memory()
    if compile:
        compile_backbone(model)
        logger.info("Inference transforms: the backbone is compiled on its first call per clip size")
    return autocast_model(model, precision, device)


def inference_options(cfg) -> dict:
    """The keyword arguments of :func:`prepare_for_inference` that ``cfg.MODEL.INFERENCE`` says
    (``TRANSFORMS`` False and ``PRECISION`` fp32: nothing is changed but eval mode)."""
    inf = cfg.MODEL.INFERENCE
    return {"fold_bn": bool(inf.TRANSFORMS), "channels_last": bool(inf.TRANSFORMS),
            "precision": inf.PRECISION,
            "device": cfg.MODEL.DEVICE, "compile": bool(inf.COMPILE),
            "keep_freed_memory": bool(inf.KEEP_FREED_MEMORY)}
