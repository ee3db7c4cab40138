"""
The 3D ResNet building blocks of the video backbones (SlowFast, SlowOnly): bottleneck block, stage,
stem, one pathway, and the fast -> slow lateral fusion of SlowFast.

Topology and parameter names: :mod:`acar_d2.modeling.backbone.slowfast` (module docstring), which
assembles them; :mod:`acar_d2.modeling.backbone.slowonly` uses one pathway alone.
"""
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .nonlocal_block import NonLocalBlock3d

__all__ = ["STAGE_BLOCKS", "STAGE_NAMES", "res5_geometry", "Bottleneck3d", "ResStage", "Stem3d", "Pathway", "LateralFusion"]

# Bottleneck blocks per stage res2..res5 (ResNet paper Table 1; 10 and 18: see the docstring of
# slowfast.py).
STAGE_BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# Temporal kernel of conv1 in the blocks of res2..res5 (SlowFast paper Table 1).
SLOW_TEMPORAL_KERNELS = (1, 1, 3, 3)
FAST_TEMPORAL_KERNELS = (3, 3, 3, 3)
# Temporal kernel of the stem conv (SlowFast paper Table 1: slow 1x7x7, fast 5x7x7).
SLOW_STEM_TEMPORAL_KERNEL = 1
FAST_STEM_TEMPORAL_KERNEL = 5
STAGE_NAMES = ("res2", "res3", "res4", "res5")

NormFactory = Callable[[int], nn.Module]


def res5_geometry(res5_dilation: int, res5_stride: int = 0) -> tuple:
    """
    Spatial (stride, dilation) of res5's first 3x3 conv and the backbone's output stride.

    ``res5_stride`` 0 keeps the usual coupling: stride 2 undilated (output stride 32), or stride
    1 with ``res5_dilation`` > 1 (output stride 16, ACAR Sec. 4.1 / SlowFast Sec. 5 on AVA).
    ``res5_stride`` 1 with dilation 1 keeps the stride-16 map without widening the receptive
    field (the relation benchmark's small-RF backbone, datasets/SYNTHETIC.md).

    Returns:
        tuple: (stride, dilation, output stride).
    """
    if res5_dilation < 1:
        raise ValueError(f"RES5_DILATION must be >= 1, got {res5_dilation}")
    if res5_stride == 0:
        res5_stride = 1 if res5_dilation > 1 else 2
    if res5_stride not in (1, 2):
        raise ValueError(f"RES5_STRIDE must be 0 (auto), 1 or 2, got {res5_stride}")
    if res5_stride == 2 and res5_dilation > 1:
        raise ValueError(f"RES5_STRIDE 2 with RES5_DILATION {res5_dilation}: a dilated res5 keeps stride 1")
    return res5_stride, res5_dilation, 16 if res5_stride == 1 else 32



class Bottleneck3d(nn.Module):
    """
    ResNet bottleneck with a temporal kernel in the first conv:
    conv1 (kt x1x1) -> conv2 (1x3x3, spatial stride / dilation) -> conv3 (1x1x1), BN after each,
    ReLU after bn1, bn2 and after the residual sum. Projection shortcut when shape changes.
    """

    def __init__(
        self,
        in_channels: int,
        bottleneck_channels: int,
        out_channels: int,
        *,
        temporal_kernel: int,
        stride: int,
        dilation: int,
        norm: NormFactory,
    ):
        super().__init__()
        self.conv1 = nn.Conv3d(
            in_channels,
            bottleneck_channels,
            (temporal_kernel, 1, 1),
            padding=(temporal_kernel // 2, 0, 0),
            bias=False,
        )
        self.bn1 = norm(bottleneck_channels)
        self.conv2 = nn.Conv3d(
            bottleneck_channels,
            bottleneck_channels,
            (1, 3, 3),
            stride=(1, stride, stride),
            padding=(0, dilation, dilation),
            dilation=(1, dilation, dilation),
            bias=False,
        )
        self.bn2 = norm(bottleneck_channels)
        self.conv3 = nn.Conv3d(bottleneck_channels, out_channels, 1, bias=False)
        self.bn3 = norm(out_channels)
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.Conv3d(
                in_channels, out_channels, 1, stride=(1, stride, stride), bias=False
            )
            self.shortcut_bn = norm(out_channels)
        else:
            self.shortcut = None
            self.shortcut_bn = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, T, H, W) -> (N, C_out, T, H/stride, W/stride)."""
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        identity = x if self.shortcut is None else self.shortcut_bn(self.shortcut(x))
        out += identity  # in place: no new activation-sized tensor (autograd needs neither value)
        return F.relu(out, inplace=True)


class ResStage(nn.Module):
    """
    A sequence of bottleneck blocks (children ``"0"``, ``"1"``, ...) with optional non-local
    blocks (children ``"nonlocal{i}"``) applied right after block i (non-local paper Sec. 4.1,
    PySlowFast's placement). ``num_temporal_blocks`` >= 0: only the first that many blocks use
    ``temporal_kernel``, the others 1 (PySlowFast's ``NUM_BLOCK_TEMP_KERNEL``; -1 = all blocks).
    """

    def __init__(
        self,
        num_blocks: int,
        in_channels: int,
        bottleneck_channels: int,
        out_channels: int,
        *,
        temporal_kernel: int,
        stride: int,
        dilation: int,
        norm: NormFactory,
        nonlocal_indices: Sequence[int] = (),
        nonlocal_pool: Sequence[int] = (1, 2, 2),
        nonlocal_instantiation: str = "softmax",
        num_temporal_blocks: int = -1,
    ):
        super().__init__()
        bad = [i for i in nonlocal_indices if not 0 <= i < num_blocks]
        if bad:
            raise ValueError(f"non-local block indices {bad} outside a stage of {num_blocks} blocks")
        self.num_blocks = num_blocks
        self.nonlocal_indices = sorted(set(nonlocal_indices))
        for i in range(num_blocks):
            block = Bottleneck3d(
                in_channels if i == 0 else out_channels,
                bottleneck_channels,
                out_channels,
                # PySlowFast's NUM_BLOCK_TEMP_KERNEL: only the first blocks keep the temporal kernel
                temporal_kernel=temporal_kernel if num_temporal_blocks < 0 or i < num_temporal_blocks else 1,
                stride=stride if i == 0 else 1,
                dilation=dilation,
                norm=norm,
            )
            self.add_module(str(i), block)
            if i in self.nonlocal_indices:
                nl = NonLocalBlock3d(
                    out_channels,
                    norm=norm,
                    pool_size=nonlocal_pool,
                    instantiation=nonlocal_instantiation,
                )
                self.add_module(f"nonlocal{i}", nl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_blocks):
            x = getattr(self, str(i))(x)
            if i in self.nonlocal_indices:
                x = getattr(self, f"nonlocal{i}")(x)
        return x


class Stem3d(nn.Module):
    """conv (kt x7x7, spatial stride 2) -> BN -> ReLU -> max pool 1x3x3 stride 2: H/4, W/4."""

    def __init__(self, out_channels: int, *, temporal_kernel: int, norm: NormFactory):
        super().__init__()
        self.conv = nn.Conv3d(
            3,
            out_channels,
            (temporal_kernel, 7, 7),
            stride=(1, 2, 2),
            padding=(temporal_kernel // 2, 3, 3),
            bias=False,
        )
        self.bn = norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)), inplace=True)
        return F.max_pool3d(x, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))


class Pathway(nn.Module):
    """One ResNet pathway: ``stem``, ``res2`` .. ``res5`` (run stage by stage by ``SlowFast``)."""

    def __init__(
        self,
        *,
        stem_channels: int,
        stage_in_channels: Sequence[int],
        stage_blocks: Sequence[int],
        stem_temporal_kernel: int,
        temporal_kernels: Sequence[int],
        res5_dilation: int,
        norm: NormFactory,
        res5_stride: int = 0,
        nonlocal_locations: Sequence[Sequence[int]] = ((), (), (), ()),
        nonlocal_pool: Sequence[int] = (1, 2, 2),
        nonlocal_instantiation: str = "softmax",
        num_temporal_blocks: Sequence[int] = (),
    ):
        super().__init__()
        self.stem = Stem3d(stem_channels, temporal_kernel=stem_temporal_kernel, norm=norm)
        for s, name in enumerate(STAGE_NAMES):
            # res2 keeps the resolution (the stem's max pool already halved it); res5 trades its
            # stride for dilation when dilated (SlowFast Sec. 5, AVA): ``res5_geometry``.
            if s == 0:
                stride, dilation = 1, 1
            elif s == 3:
                stride, dilation, _ = res5_geometry(res5_dilation, res5_stride)
            else:
                stride, dilation = 2, 1
            stage = ResStage(
                stage_blocks[s],
                stage_in_channels[s],
                stem_channels * 2**s,
                stem_channels * 4 * 2**s,
                temporal_kernel=temporal_kernels[s],
                stride=stride,
                dilation=dilation,
                norm=norm,
                nonlocal_indices=nonlocal_locations[s],
                nonlocal_pool=nonlocal_pool,
                nonlocal_instantiation=nonlocal_instantiation,
                num_temporal_blocks=num_temporal_blocks[s] if len(num_temporal_blocks) else -1,
            )
            self.add_module(name, stage)


class LateralFusion(nn.Module):
    """
    Fast -> slow lateral connection (SlowFast Sec. 3.3, "time-strided convolution"):
    conv k x1x1 with temporal stride alpha, then BN + ReLU unless ``only_conv`` (official R101).
    """

    def __init__(
        self,
        fast_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        alpha: int,
        only_conv: bool,
        norm: NormFactory,
    ):
        super().__init__()
        self.conv = nn.Conv3d(
            fast_channels,
            out_channels,
            (kernel_size, 1, 1),
            stride=(alpha, 1, 1),
            padding=(kernel_size // 2, 0, 0),
            bias=False,
        )
        self.bn = None if only_conv else norm(out_channels)

    def forward(self, fast: torch.Tensor) -> torch.Tensor:
        """(N, C_fast, T, H, W) -> (N, C_out, T/alpha, H, W)."""
        x = self.conv(fast)
        if self.bn is not None:
            x = F.relu(self.bn(x), inplace=True)
        return x
