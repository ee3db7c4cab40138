"""
Space-time non-local block (Wang et al., "Non-local Neural Networks", CVPR 2018) for the slow
pathway of the R101+NL SlowFast variant.

Design (facts from the non-local paper Sec. 3.2-3.3 and PySlowFast's ``Nonlocal`` module, so that
its checkpoints map 1:1 by name: ``conv_theta``, ``conv_phi``, ``conv_g``, ``conv_out``, ``bn``):

* theta, phi, g: 1x1x1 convolutions (with bias) from C to C_inner = C / 2 channels
  (paper Sec. 3.3 "bottleneck": halve the channels of the embeddings);
* phi and g are sub-sampled with a max pool (default 1x2x2, paper Sec. 3.3 "subsampling");
* pairwise function: "softmax" = embedded Gaussian with the 1/sqrt(C_inner) scale (paper Eq. 3),
  or "dot_product" = raw dot product divided by the number of key positions (paper Eq. 4);
* output: 1x1x1 conv back to C channels, BN, residual ``x + z``. The BN's gamma starts at 0
  (paper Sec. 3.3: "initialized as zero ... the entire block is an identity mapping"), so a
  freshly inserted block does not change a pre-trained network.
"""
from typing import Callable, Sequence

import torch
from torch import nn

__all__ = ["NonLocalBlock3d"]


class NonLocalBlock3d(nn.Module):
    def __init__(
        self,
        channels: int,
        *,
        norm: Callable[[int], nn.Module],
        pool_size: Sequence[int] = (1, 2, 2),
        instantiation: str = "softmax",
    ):
        """
        Args:
            channels (int): C, input and output channels.
            norm (callable): ``norm(C)`` builds the output normalisation (see ``norm.py``:
                FrozenStatsBatchNorm3d, FrozenBatchNorm3d or BatchNorm3d).
            pool_size (tuple[int]): max-pool kernel/stride (T, H, W) applied to phi and g;
                (1, 1, 1) disables the sub-sampling.
            instantiation (str): "softmax" (embedded Gaussian) or "dot_product".
        """
        super().__init__()
        if instantiation not in ("softmax", "dot_product"):
            raise ValueError(f"unknown non-local instantiation {instantiation!r}")
        inner = channels // 2
        self.instantiation = instantiation
        self.inner_channels = inner
        self.conv_theta = nn.Conv3d(channels, inner, 1)
        self.conv_phi = nn.Conv3d(channels, inner, 1)
        self.conv_g = nn.Conv3d(channels, inner, 1)
        self.pool = (
            nn.MaxPool3d(tuple(pool_size), stride=tuple(pool_size))
            if any(p > 1 for p in pool_size)
            else nn.Identity()
        )
        self.conv_out = nn.Conv3d(inner, channels, 1)
        self.bn = norm(channels)
        with torch.no_grad():
            self.bn.weight.zero_()  # identity at initialisation, see module docstring

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x (Tensor): (N, C, T, H, W).
        Returns:
            Tensor: (N, C, T, H, W) = x + BN(conv_out(attention-weighted g)).
        """
        n, _, t, h, w = x.shape
        theta = self.conv_theta(x).flatten(2)  # (N, C', THW)
        pooled = self.pool(x)
        phi = self.conv_phi(pooled).flatten(2)  # (N, C', P)
        g = self.conv_g(pooled).flatten(2)  # (N, C', P)
        affinity = torch.einsum("ncq,ncp->nqp", theta, phi)  # (N, THW, P)
        if self.instantiation == "softmax":
            affinity = (affinity * self.inner_channels**-0.5).softmax(dim=2)
        else:
            affinity = affinity / phi.shape[2]
        z = torch.einsum("nqp,ncp->ncq", affinity, g).reshape(n, self.inner_channels, t, h, w)
        return x + self.bn(self.conv_out(z))
