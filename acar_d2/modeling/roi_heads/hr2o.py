"""
High-order Relation Reasoning Operators (HR2O, ACAR Sec. 3.3) and their registry.

An HR2O block refines the first-order actor-context relation maps of the actors of one clip by
letting each actor's map attend to the maps of the other actors *at the same spatial location*
(actor-context-actor relations). All variants share the block tail of the official
``HR2O_NL``: ``virt -> GroupNorm(1) -> ReLU -> conv -> Dropout -> x + virt`` (residual); they
differ in how ``virt`` aggregates the other actors (ACAR Table 1b):

* ``nl``: dot-product attention with a softmax over the actors of the clip (official);
* ``gattn``: graph attention, ``LeakyReLU(q_i + k_j)`` scalar scores;
* ``rn``: relation network, ``mean_j ReLU(f(x_i) + g(x_j))`` over actor pairs;
* ``avg``: plain average of the other actors' values.

Inputs are all R actors of N clips at once, (R, C, h, w) with a :class:`ClipActorLayout` saying
which clip each belongs to and an (R, 1, h, w) mask of valid cells (maps of clips with smaller
valid context are zero beyond it; statistics and outputs only use the valid cells).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.utils.registry import Registry

from .layout import ClipActorLayout

__all__ = ["HR2O_REGISTRY", "build_hr2o", "HR2OBlock", "masked_group_norm"]

HR2O_REGISTRY = Registry("HR2O")
HR2O_REGISTRY.__doc__ = """
Registry for high-order relation operators (HR2O) of the ACAR head (ACAR Sec. 3.3, Table 1b).

The registered class is called as
``HR2O_REGISTRY.get(name)(channels=C, kernel_size=3, out_kernel_size=3, dropout=0.2)``
and the module as ``block(x, layout, mask)`` with ``x`` (R, C, h, w) relation maps of all actors,
``layout`` a :class:`ClipActorLayout` (actors only interact within their clip) and ``mask``
(R, 1, h, w) valid cells; it returns refined (R, C, h, w) maps, zero outside ``mask``.
"""


def masked_group_norm(x: torch.Tensor, mask: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """
    GroupNorm with one group whose statistics use only valid cells.

    The official head normalises each actor's cropped map over (C, h, w); computing mean and
    (biased) variance over the masked cells gives exactly that for maps stored with padding.

    Args:
        x: (R, C, h, w); mask: (R, 1, h, w); norm: ``nn.GroupNorm(1, C)`` holding weight/bias/eps.
    """
    if norm.num_groups != 1:
        raise ValueError(f"masked_group_norm supports 1 group, got {norm.num_groups}")
    count = (mask.sum(dim=(1, 2, 3)) * x.shape[1]).clamp(min=1.0)[:, None, None, None]
    mean = (x * mask).sum(dim=(1, 2, 3), keepdim=True) / count
    centered = (x - mean) * mask
    var = (centered * centered).sum(dim=(1, 2, 3), keepdim=True) / count
    y = centered / torch.sqrt(var + norm.eps)
    if norm.affine:
        y = y * norm.weight[None, :, None, None] + norm.bias[None, :, None, None]
    return y * mask


def _mask_empty_slots(scores: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
    """scores (N, M, M, ...) over (i, j): empty slots j get the lowest finite value (not -inf,
    so that slots of a clip without actors give a uniform, NaN-free softmax that is discarded)."""
    shape = (layout.num_clips, 1, layout.max_regions) + (1,) * (scores.dim() - 3)
    keep = layout.actor_mask.view(shape)
    return scores.masked_fill(~keep, torch.finfo(scores.dtype).min)


class HR2OBlock(nn.Module):
    """Shared tail of every HR2O operator: norm, ReLU, output conv, dropout, residual."""

    def __init__(self, channels: int, out_kernel_size: int = 3, dropout: float = 0.2):
        super().__init__()
        # GroupNorm with one group (official HR2O_NL, eps 1e-5); used through masked_group_norm.
        self.norm = nn.GroupNorm(1, channels)
        self.conv = nn.Conv2d(
            channels, channels, out_kernel_size, padding=out_kernel_size // 2, bias=False
        )
        self.dropout = nn.Dropout(dropout)

    def aggregate(self, x: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
        """(R, C, h, w) masked maps -> (R, C, h, w) aggregated 'virtual' maps."""
        raise NotImplementedError

    def attention(self, x: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
        """
        The weights with which :meth:`aggregate` mixes the actors (relation maps, Fig. 6).

        Args:
            x: (R, C, h, w) masked maps, as passed to :meth:`aggregate`.
        Returns:
            Tensor: (N, M, M, h, w) weights ``a_ij(y, x)`` of actor slot i on actor slot j at each
            cell, summing to 1 over j (dim 2) for the real actors j of the clip.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no attention weights over actors to show as relation maps "
            "(supported HR2O operators: nl, gattn, avg)"
        )

    def forward(self, x: torch.Tensor, layout: ClipActorLayout, mask: torch.Tensor) -> torch.Tensor:
        virt = self.aggregate(x, layout) * mask
        virt = F.relu(masked_group_norm(virt, mask, self.norm))
        virt = self.dropout(self.conv(virt)) * mask
        return x + virt


def _conv(channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)


@HR2O_REGISTRY.register()
class HR2ONonLocal(HR2OBlock):
    """
    Official HR2O_NL: ``a_ij(y, x) = softmax_j <q_i(y, x), k_j(y, x)> / sqrt(C)``,
    ``virt_i = sum_j a_ij v_j`` over the actors j of the clip (itself included).
    """

    def __init__(self, channels: int, kernel_size: int = 3, out_kernel_size: int = 3,
                 dropout: float = 0.2):
        super().__init__(channels, out_kernel_size, dropout)
        self.conv_q = _conv(channels, channels, kernel_size)
        self.conv_k = _conv(channels, channels, kernel_size)
        self.conv_v = _conv(channels, channels, kernel_size)

    def attention(self, x: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
        q = layout.to_padded(self.conv_q(x))  # (N, M, C, h, w)
        k = layout.to_padded(self.conv_k(x))
        scores = torch.einsum("nicyx,njcyx->nijyx", q, k) / math.sqrt(q.shape[2])
        return F.softmax(_mask_empty_slots(scores, layout), dim=2)

    def aggregate(self, x: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
        v = layout.to_padded(self.conv_v(x))
        return layout.to_flat(torch.einsum("nijyx,njcyx->nicyx", self.attention(x, layout), v))


@HR2O_REGISTRY.register()
class HR2OGraphAttention(HR2OBlock):
    """
    Graph attention (GAT-style): ``e_ij = LeakyReLU(q_i + k_j)`` with scalar maps q, k, softmax
    over j, ``virt_i = sum_j a_ij v_j``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, out_kernel_size: int = 3,
                 dropout: float = 0.2):
        super().__init__(channels, out_kernel_size, dropout)
        self.conv_q = _conv(channels, 1, kernel_size)
        self.conv_k = _conv(channels, 1, kernel_size)
        self.conv_v = _conv(channels, channels, kernel_size)

    def attention(self, x: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
        q = layout.to_padded(self.conv_q(x))[:, :, None, 0]  # (N, M, 1, h, w)
        k = layout.to_padded(self.conv_k(x))[:, None, :, 0]  # (N, 1, M, h, w)
        # slope 0.2 as in the graph attention paper (Velickovic et al., ICLR 2018, Sec. 2.1).
        scores = F.leaky_relu(q + k, negative_slope=0.2)
        return F.softmax(_mask_empty_slots(scores, layout), dim=2)

    def aggregate(self, x: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
        v = layout.to_padded(self.conv_v(x))
        return layout.to_flat(torch.einsum("nijyx,njcyx->nicyx", self.attention(x, layout), v))


def _mean_over_actors(pair: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
    """pair (N, M, M, C, h, w) over (i, j) -> mean over the real actors j -> (N, M, C, h, w)."""
    keep = layout.actor_mask.to(pair.dtype)  # (N, M)
    count = keep.sum(dim=1).clamp(min=1.0)
    return (pair * keep[:, None, :, None, None, None]).sum(dim=2) / count[:, None, None, None, None]


@HR2O_REGISTRY.register()
class HR2ORelationNetwork(HR2OBlock):
    """
    Relation network over actor pairs (Santoro et al., 2017): ``virt_i = mean_j ReLU(W [x_i, x_j])``
    with W split into ``conv_i`` / ``conv_j`` so each is applied once per actor, not per pair.
    """

    def __init__(self, channels: int, kernel_size: int = 3, out_kernel_size: int = 3,
                 dropout: float = 0.2):
        super().__init__(channels, out_kernel_size, dropout)
        self.conv_i = _conv(channels, channels, kernel_size)
        self.conv_j = _conv(channels, channels, kernel_size)

    def aggregate(self, x: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
        a = layout.to_padded(self.conv_i(x))  # (N, M, C, h, w)
        b = layout.to_padded(self.conv_j(x))
        pair = F.relu(a[:, :, None] + b[:, None, :])  # (N, M, M, C, h, w)
        return layout.to_flat(_mean_over_actors(pair, layout))


@HR2O_REGISTRY.register()
class HR2OAverage(HR2OBlock):
    """Uniform aggregation: ``virt_i = mean_j v_j`` over the actors of the clip."""

    def __init__(self, channels: int, kernel_size: int = 3, out_kernel_size: int = 3,
                 dropout: float = 0.2):
        super().__init__(channels, out_kernel_size, dropout)
        self.conv_v = _conv(channels, channels, kernel_size)

    def aggregate(self, x: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
        v = layout.to_padded(self.conv_v(x))  # (N, M, C, h, w)
        keep = layout.actor_mask.to(v.dtype)
        mean = (v * keep[:, :, None, None, None]).sum(1) / keep.sum(1).clamp(min=1.0)[:, None, None, None]
        return layout.to_flat(mean[:, None].expand_as(v))

    def attention(self, x: torch.Tensor, layout: ClipActorLayout) -> torch.Tensor:
        """Uniform weights 1 / R_n over the actors of the clip, at every cell."""
        keep = layout.actor_mask.to(x.dtype)  # (N, M)
        weights = keep / keep.sum(1, keepdim=True).clamp(min=1.0)
        shape = (layout.num_clips, layout.max_regions, layout.max_regions) + tuple(x.shape[-2:])
        return weights[:, None, :, None, None].expand(shape)


_SHORT_NAMES = {
    "nl": "HR2ONonLocal",
    "gattn": "HR2OGraphAttention",
    "rn": "HR2ORelationNetwork",
    "avg": "HR2OAverage",
}


def build_hr2o(name: str, *, channels: int, kernel_size: int = 3, out_kernel_size: int = 3,
               dropout: float = 0.2) -> HR2OBlock:
    """Build one HR2O block by short name ("nl", "gattn", "rn", "avg") or registry name."""
    cls = HR2O_REGISTRY.get(_SHORT_NAMES.get(name, name))
    return cls(channels=channels, kernel_size=kernel_size, out_kernel_size=out_kernel_size,
               dropout=dropout)
