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

import torch
import torch.nn.functional as F

from .hr2o import HR2OBlock, masked_group_norm
from .layout import ClipActorLayout

__all__ = ["BankAttentionBlock"]


class BankAttentionBlock(HR2OBlock):
    """
    ``a_im(y, x) = softmax_m <q_i(y, x), k_m(y, x)> / sqrt(C)`` over the bank entries m of actor
    i's clip, ``virt_i = sum_m a_im v_m``; ``out_i = x_i + drop(conv(ReLU(GN(virt_i))))``.

    q from the current maps, k and v from the bank maps, each a ``kernel_size`` convolution
    without bias (HR2O-NL's ``conv_q``/``conv_k``/``conv_v``).
    """

    def __init__(self, channels: int, kernel_size: int = 3, out_kernel_size: int = 3,
                 dropout: float = 0.2):
        super().__init__(channels, out_kernel_size, dropout)
        pad = kernel_size // 2
        self.conv_q = torch.nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)
        self.conv_k = torch.nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)
        self.conv_v = torch.nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)

    def attend(
        self, x: torch.Tensor, layout: ClipActorLayout, bank: torch.Tensor, bank_mask: torch.Tensor
    ) -> torch.Tensor:
        """
        Args:
            x: (R, C, h, w) current maps (zero outside the valid cells).
            layout: clip of each of the R actors (N clips).
            bank: (N, M, C, h, w) bank maps of each clip's window, zero in empty slots and outside
                each entry's valid cells.
            bank_mask: (N, M, 1, h, w) float, 1 on the valid cells of real entries.

        Returns:
            (R, C, h, w) aggregated values ``virt`` (zero for actors of clips without entries).
        """
        n, m, c, h, w = bank.shape
        q = layout.to_padded(self.conv_q(x))  # (N, A, C, h, w)
        flat = bank.reshape(n * m, c, h, w)
        flat_mask = bank_mask.reshape(n * m, 1, h, w)
        k = (self.conv_k(flat) * flat_mask).view(n, m, c, h, w)
        v = (self.conv_v(flat) * flat_mask).view(n, m, c, h, w)
        scores = torch.einsum("nacyx,nmcyx->namyx", q, k) / math.sqrt(c)  # (N, A, M, h, w)
        valid = bank_mask[:, None, :, 0] > 0  # (N, 1, M, h, w): entry m has this cell
        scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)
        attn = F.softmax(scores, dim=2) * valid.to(scores.dtype)  # cells no entry has -> 0
        return layout.to_flat(torch.einsum("namyx,nmcyx->nacyx", attn, v))

    def forward(self, x: torch.Tensor, layout: ClipActorLayout, mask: torch.Tensor,
                bank: torch.Tensor, bank_mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: (R, C, h, w) current maps; mask: (R, 1, h, w) their valid cells.
            layout, bank, bank_mask: see :meth:`attend`.

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
        virt = self.attend(x, layout, bank, bank_mask) * mask
        virt = F.relu(masked_group_norm(virt, mask, self.norm))
        virt = self.dropout(self.conv(virt)) * mask
        has_bank = (bank_mask.flatten(1).amax(dim=1) > 0).to(x.dtype)[layout.clip_index]
        return x + virt * has_bank[:, None, None, None]
