"""
``FrozenBatchNorm3d``: BatchNorm3d whose affine parameters and statistics never change.

The official ACAR-Net recipe trains with every backbone BN in eval mode ("freeze_bn: True",
ACAR paper Sec. 4.1: batches of a few clips per GPU give useless batch statistics). A frozen BN
is a per-channel affine map, so it is exact in train and eval mode alike and costs no memory for
gradients. Modelled on detectron2's ``FrozenBatchNorm2d`` (``layers/batch_norm.py``), for
5-D inputs ``(N, C, T, H, W)``.
"""
import torch
from torch import nn

__all__ = ["FrozenBatchNorm3d", "convert_frozen_batchnorm3d"]


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
