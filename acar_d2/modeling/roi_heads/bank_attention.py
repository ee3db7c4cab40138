"""
The bank-attention block: a non-local block whose keys and values come from a long-term feature
bank instead of from its own input (ACAR Sec. 3.3 "Actor-Context Feature Bank"; the Feature Bank
Operator of the LFB paper, Wu et al. CVPR 2019, Sec. 3.3).

HR2O-NL (``hr2o.py``) relates the relation maps of the actors of one clip to each other. Here the
queries are the current actors' maps and the keys/values are the bank entries of the clip's window
(every actor at every bank time around the key frame), still *location-wise*: at each cell (y, x)
the attention is over the bank entries' values at the same cell. With 1x1 maps it is the LFB
operator on feature vectors. The block tail is HR2O's (``HR2OBlock``): GroupNorm(1) (= LayerNorm
over (C, h, w), the LFB operator's LayerNorm on vectors) -> ReLU -> conv -> dropout -> residual.

A clip whose window holds no bank entry (no actor in the window, or a window wholly outside the
video) has nothing to attend to: the block is the identity for its actors.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F

from .hr2o import HR2OBlock, masked_group_norm
from .layout import ClipActorLayout

__all__ = ["BankAttentionBlock", "place_encoding"]


def place_encoding(boxes: torch.Tensor, num_freqs: int = 4) -> torch.Tensor:
    """
    Sinusoidal encoding of normalised box centres (the actor's place in the frame).

    Args:
        boxes: (..., 4) XYXY boxes normalised to [0, 1] by the frame's width and height.
        num_freqs: frequencies pi * 2^k, k < num_freqs, per coordinate.

    Returns:
        (..., 4 * num_freqs): [sin, cos] of each frequency times cx and cy.
    """
    centre = torch.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], -1)
    freqs = math.pi * 2.0 ** torch.arange(num_freqs, dtype=boxes.dtype, device=boxes.device)
    angles = (centre[..., None] * freqs).flatten(-2)  # (..., 2 * num_freqs)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class BankAttentionBlock(HR2OBlock):
    """
    ``a_im(y, x) = softmax_m <q_i(y, x), k_m(y, x)> / sqrt(C)`` over the bank entries m of actor
    i's clip, ``virt_i = sum_m a_im v_m``; ``out_i = x_i + drop(conv(ReLU(GN(virt_i))))``.

    q from the current maps, k and v from the bank maps, each a ``kernel_size`` convolution
    without bias (HR2O-NL's ``conv_q``/``conv_k``/``conv_v``).

    With ``place_dim > 0`` the score gains a term of the actors' places,
    ``<P_q e_i, P_k e_m> / sqrt(C)`` (e = :func:`place_encoding` of the box centre; the same for
    every cell): a relation map carries no position of its actor (the actor feature is tiled over
    the context), so without it a current actor finds its own past entries only by appearance.
    """

    def __init__(self, channels: int, kernel_size: int = 3, out_kernel_size: int = 3,
                 dropout: float = 0.2, place_dim: int = 0):
        super().__init__(channels, out_kernel_size, dropout)
        pad = kernel_size // 2
        self.conv_q = torch.nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)
        self.conv_k = torch.nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)
        self.conv_v = torch.nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)
        self.place_dim = int(place_dim)
        if self.place_dim > 0:
            self.place_q = torch.nn.Linear(self.place_dim, channels, bias=False)
            self.place_k = torch.nn.Linear(self.place_dim, channels, bias=False)
            # Tied orthogonal start (P_q = P_k, P^T P = g I when C >= place_dim): the place term
            # is g / sqrt(C) <e_i, e_m>, a kernel of the centre distance scoring the same place
            # +8 (|e|^2 = place_dim / 2), so own entries stand out before any training.
            torch.nn.init.orthogonal_(self.place_q.weight)
            with torch.no_grad():
                self.place_q.weight.mul_(math.sqrt(16.0 * math.sqrt(channels) / self.place_dim))
                self.place_k.weight.copy_(self.place_q.weight)

    def attention(
        self, x: torch.Tensor, layout: ClipActorLayout, bank: torch.Tensor, bank_mask: torch.Tensor,
        place: Optional[torch.Tensor] = None, bank_place: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """
        The attention weights (arguments as :meth:`attend`).

        Returns:
            (N, A, M, h, w): weight of window entry m for actor slot a at each cell; 0 at cells
            no entry has (A = most actors of a clip; padded slots as ``layout.to_padded``).
        """
        n, m, c, h, w = bank.shape
        q = layout.to_padded(self.conv_q(x))  # (N, A, C, h, w)
        k = (self.conv_k(bank.reshape(n * m, c, h, w)) * bank_mask.reshape(n * m, 1, h, w))
        scores = torch.einsum("nacyx,nmcyx->namyx", q, k.view(n, m, c, h, w)) / math.sqrt(c)
        if self.place_dim > 0:
            if place is None or bank_place is None:
                raise ValueError("this bank block encodes places (place_dim > 0): give the current "
                                 "actors' and the bank entries' place encodings")
            pq = layout.to_padded(self.place_q(place))  # (N, A, C)
            pk = self.place_k(bank_place)  # (N, M, C)
            scores = scores + (torch.einsum("nac,nmc->nam", pq, pk) / math.sqrt(c))[..., None, None]
        valid = bank_mask[:, None, :, 0] > 0  # (N, 1, M, h, w): entry m has this cell
        scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)
        return F.softmax(scores, dim=2) * valid.to(scores.dtype)  # cells no entry has -> 0

    def attend(
        self, x: torch.Tensor, layout: ClipActorLayout, bank: torch.Tensor, bank_mask: torch.Tensor,
        place: Optional[torch.Tensor] = None, bank_place: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """
        Args:
            x: (R, C, h, w) current maps (zero outside the valid cells).
            layout: clip of each of the R actors (N clips).
            bank: (N, M, C, h, w) bank maps of each clip's window, zero in empty slots and outside
                each entry's valid cells.
            bank_mask: (N, M, 1, h, w) float, 1 on the valid cells of real entries.
            place: (R, place_dim) place encodings of the current actors (``place_dim > 0`` only).
            bank_place: (N, M, place_dim) those of the bank entries (``place_dim > 0`` only).

        Returns:
            (R, C, h, w) aggregated values ``virt`` (zero for actors of clips without entries).
        """
        n, m, c, h, w = bank.shape
        attn = self.attention(x, layout, bank, bank_mask, place, bank_place)
        v = (self.conv_v(bank.reshape(n * m, c, h, w)) * bank_mask.reshape(n * m, 1, h, w))
        return layout.to_flat(torch.einsum("namyx,nmcyx->nacyx", attn, v.view(n, m, c, h, w)))

    def forward(self, x: torch.Tensor, layout: ClipActorLayout, mask: torch.Tensor,
                bank: torch.Tensor, bank_mask: torch.Tensor, place: Optional[torch.Tensor] = None,
                bank_place: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x: (R, C, h, w) current maps; mask: (R, 1, h, w) their valid cells.
            layout, bank, bank_mask, place, bank_place: see :meth:`attend`.

        Returns:
            (R, C, h, w) refined maps, zero outside ``mask``; ``x`` itself for the actors of clips
            without bank entries.
        """
        if bank.shape[-2:] != x.shape[-2:] or bank.shape[2] != x.shape[1]:
            raise ValueError(
                f"bank entries are {tuple(bank.shape[2:])} (C, h, w) but the current maps are "
                f"{tuple(x.shape[1:])}: the bank was extracted with other head widths, clip size "
                "or down-sampling (INPUT.CLIP / MODEL.ACTION_HEAD.DOWNSAMPLE) than this model"
            )
        if x.shape[0] == 0:
            return x
        virt = self.attend(x, layout, bank, bank_mask, place, bank_place) * mask
        virt = F.relu(masked_group_norm(virt, mask, self.norm))
        virt = self.dropout(self.conv(virt)) * mask
        has_bank = (bank_mask.flatten(1).amax(dim=1) > 0).to(x.dtype)[layout.clip_index]
        return x + virt * has_bank[:, None, None, None]
