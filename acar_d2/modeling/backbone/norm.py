"""
The three backbone norms, chosen by ``MODEL.SLOWFAST.NORM`` (``get_norm3d``):

==================  ==========================  ===================  ==========================
NORM                class                       statistics           scale / shift
==================  ==========================  ===================  ==========================
``"FrozenStatsBN"`` ``FrozenStatsBatchNorm3d``  stored, never change trainable parameters
``"FrozenBN"``      ``FrozenBatchNorm3d``       stored, never change fixed buffers
``"BN"``            ``nn.BatchNorm3d``          batch (train mode)   trainable parameters
==================  ==========================  ===================  ==========================

The official ACAR-Net recipe (``freeze_bn: True``; PySlowFast's ``BN.FREEZE`` the same way) puts
every backbone BatchNorm in evaluation mode after ``model.train()``: the running mean / variance
never change, but the BN scale and shift stay ordinary parameters that get gradients, weight decay
and momentum. ``FrozenStatsBatchNorm3d`` is that layer, independent of ``train()`` / ``eval()``.
Batches of a few clips per GPU give useless batch statistics (ACAR Sec. 4.1), hence the frozen
statistics. detectron2's fully frozen norm (``FrozenBatchNorm2d``, here for 5-D inputs) stays
available as ``"FrozenBN"``: a per-channel affine map with nothing to train.

All three save the same tensors under the same names (``weight``, ``bias``, ``running_mean``,
``running_var``; ``nn.BatchNorm3d`` and ``FrozenStatsBatchNorm3d`` also the step counter
``num_batches_tracked``, which the others accept and ignore), so a checkpoint loads into any.
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NORMS",
    "FrozenBatchNorm3d",
    "FrozenStatsBatchNorm3d",
    "convert_frozen_batchnorm3d",
    "get_norm3d",
]


class FrozenBatchNorm3d(nn.Module):
    """
    BatchNorm3d with fixed ``weight``, ``bias``, ``running_mean`` and ``running_var``.

    All four are buffers (not parameters), so they receive no gradient, are skipped by the
    optimizer and stay unchanged by a train-mode forward. They are saved in the state dict under
    the same names as ``nn.BatchNorm3d`` uses, so checkpoints load into either.

    Computes ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel.
    """

    _version = 3

    def __init__(self, num_features: int, eps: float = 1e-5):
        """
        Args:
            num_features (int): C, the number of channels.
            eps (float): added to the variance; 1e-5 is the BatchNorm3d default used by both the
                official ACAR-Net and PySlowFast backbones (docs/CHECKPOINTS.md, section 3).
        """
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x (Tensor): (N, C, T, H, W).
        Returns:
            Tensor: (N, C, T, H, W), same dtype as ``x``.
        """
        # Folding into one scale and shift is what makes the layer cheap; the rounding differs
        # from nn.BatchNorm3d's eval path by ~1e-7 relative.
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        shape = (1, -1, 1, 1, 1)
        return x * scale.to(x.dtype).view(shape) + shift.to(x.dtype).view(shape)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # A frozen BN has no use for the step counter of nn.BatchNorm3d; accept checkpoints that
        # carry it (official ACAR and PySlowFast files do) without reporting an unexpected key.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class FrozenStatsBatchNorm3d(nn.BatchNorm3d):
    """
    BatchNorm3d that always normalises with its stored statistics, whose scale and shift train.

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel, computed by
    the same kernel as ``nn.BatchNorm3d`` in evaluation mode, in train and eval mode alike;
    ``running_mean`` / ``running_var`` / ``num_batches_tracked`` never change. ``weight`` and
    ``bias`` are ``nn.Parameter``s: gradients, weight decay (``SOLVER.WEIGHT_DECAY_NORM``, as for
    any ``nn.BatchNorm3d``) and momentum apply to them. This is the official ``freeze_bn: True``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        """
        Args:
            num_features (int): C, the number of channels.
            eps (float): added to the variance (1e-5 as in the official backbones).
        """
        super().__init__(num_features, eps=eps, momentum=0.0, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x (Tensor): (N, C, T, H, W).
        Returns:
            Tensor: (N, C, T, H, W), differentiable in ``x``, ``weight`` and ``bias``.
        """
        if x.dim() != 5:
            raise ValueError(f"FrozenStatsBatchNorm3d expects (N, C, T, H, W), got {tuple(x.shape)}")
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            training=False, momentum=0.0, eps=self.eps,
        )

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # Files written from a FrozenBatchNorm3d model, and converted official / PySlowFast files,
        # have no step counter; it is never used here, so its absence is not a missing key.
        key = prefix + "num_batches_tracked"
        if key not in state_dict:
            state_dict[key] = self.num_batches_tracked.detach().clone()
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


NORMS = {
    "FrozenStatsBN": FrozenStatsBatchNorm3d,
    "FrozenBN": FrozenBatchNorm3d,
    "BN": nn.BatchNorm3d,
}


def get_norm3d(norm: str):
    """
    The norm class of a ``MODEL.SLOWFAST.NORM`` name (see the module docstring).

    Args:
        norm (str): "FrozenStatsBN", "FrozenBN" or "BN".
    Returns:
        callable: ``cls(num_channels)`` builds the layer.
    """
    if norm not in NORMS:
        raise ValueError(f"MODEL.SLOWFAST.NORM must be one of {sorted(NORMS)}, got {norm!r}")
    return NORMS[norm]


def convert_frozen_batchnorm3d(module: nn.Module) -> nn.Module:
    """
    Replace every ``nn.BatchNorm3d`` in ``module`` (recursively) by a ``FrozenBatchNorm3d`` holding
    its current affine parameters and statistics.

    Args:
        module (nn.Module): a module or a BatchNorm3d.
    Returns:
        nn.Module: the converted module (``module`` itself when it is not a BatchNorm3d; its
        children are replaced in place).
    """
    if isinstance(module, nn.BatchNorm3d):
        frozen = FrozenBatchNorm3d(module.num_features, module.eps)
        if module.affine:
            frozen.weight.copy_(module.weight.detach())
            frozen.bias.copy_(module.bias.detach())
        if module.track_running_stats:
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        new_child = convert_frozen_batchnorm3d(child)
        if new_child is not child:
            module.add_module(name, new_child)
    return module
