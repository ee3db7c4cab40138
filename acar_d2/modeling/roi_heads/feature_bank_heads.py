"""
Long-term feature-bank heads (ROI_HEADS_REGISTRY), selected with ``MODEL.ROI_HEADS.NAME``:

* :class:`ACFBROIHeads` - ACAR with the Actor-Context Feature Bank (ACAR Sec. 3.3, Table 1f):
  the current first-order actor-context relation maps (the HR2O input) attend, location-wise,
  to the relation maps of every actor at every bank time of the window around the key frame
  (19 clips / 21 s on AVA), through ``NUM_LAYERS`` stacked :class:`BankAttentionBlock` (the paper:
  two modified non-local blocks replacing HR2O-NL's self-attention, so ACFB configs set
  ``HR2O_DEPTH: 0``; a non-zero depth runs HR2O first).
* :class:`LFBROIHeads` - the LFB baseline (Wu et al., CVPR 2019): per-actor RoI features of the
  "3D-CNN" head attend to a bank of per-actor RoI feature vectors over a 60 s window (Feature Bank
  Operator, non-local, 2 layers); ``fc([actor, FBO output])``.

Both take the bank through an explicit argument (the head contract of docs/ARCHITECTURE.md plus
``feature_bank``)::

    logits, losses = roi_heads(features, boxes, valid_sizes, image_size, gt_actions=None,
                               feature_bank=banks)
      banks   list[dict], one per clip (the model input key "feature_bank", written by
              ``acar_d2.data.feature_bank.FeatureBankDatasetMapper``):
              "features" (M, C, h, w) float (fp16 allowed) - the M bank entries of the window,
              "valid_sizes" (M, 2) long - valid cells of each entry (top-left block),
              "times" (M,) long - bank time minus key-frame time, in seconds (informative),
              "boxes" (M, 4) float - the entries' boxes normalised to the frame (read by ACFB with
              MODEL.FEATURE_BANK.PLACE_ENCODING only).

:func:`compute_bank_entries` gives what a bank stores for one kind from a trained model's head.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.structures import Boxes
from detectron2.utils.logger import log_first_n

from ...config import bank_kind_of
from .acar_heads import ACARROIHeads
from .action_heads import ActionROIHeads
from .bank_attention import BankAttentionBlock, place_encoding
from .layout import ClipActorLayout, masked_mean
from .relation_heads import ActorContextROIHeads

__all__ = ["ACFBROIHeads", "LFBROIHeads", "BANK_KINDS", "PLACE_ENCODINGS", "compute_bank_entries",
           "pad_bank", "pad_bank_places"]

# What a bank entry is: ACFB relation maps, LFB RoI feature vectors.
BANK_KINDS = ("acfb", "lfb")
# MODEL.FEATURE_BANK.PLACE_ENCODING of the ACFB head -> frequencies per box-centre coordinate
# (``place_encoding``); "none" = the paper's block (no place term).
PLACE_ENCODINGS = {"none": 0, "box_centre": 4}


def pad_bank(
    feature_bank: Sequence[dict], device: torch.device, dtype: torch.dtype,
    empty_shape: Tuple[int, int, int] = (1, 1, 1),
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Stack the per-clip banks into one padded tensor.

    Args:
        feature_bank: N dicts with "features" (M_n, C, h, w) and "valid_sizes" (M_n, 2).
        empty_shape: (C, h, w) used when no clip has an entry (the current maps' shape).

    Returns:
        bank (N, M, C, h, w) with M = max M_n (zeros in empty slots and outside valid cells),
        bank_mask (N, M, 1, h, w) float, 1 on the valid cells of real entries.
    """
    feats = [torch.as_tensor(b["features"]) for b in feature_bank]
    shapes = {tuple(f.shape[1:]) for f in feats if f.shape[0] > 0}
    if len(shapes) > 1:
        raise ValueError(f"bank entries of one batch have different shapes {sorted(shapes)}")
    if not shapes:
        shapes = {tuple(int(v) for v in empty_shape)}
    c, h, w = shapes.pop()
    n, m = len(feats), max([f.shape[0] for f in feats] + [1])
    bank = torch.zeros((n, m, c, h, w), dtype=dtype, device=device)
    mask = torch.zeros((n, m, 1, h, w), dtype=dtype, device=device)
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    for i, (f, b) in enumerate(zip(feats, feature_bank)):
        if f.shape[0] == 0:
            continue
        sizes = torch.as_tensor(b.get("valid_sizes", [[h, w]] * f.shape[0]), device=device)
        sizes = sizes.reshape(-1, 2)
        if len(sizes) != f.shape[0]:
            raise ValueError(f"clip {i}: {f.shape[0]} bank entries but {len(sizes)} valid sizes")
        cells = (rows[None, :, None] < sizes[:, :1, None]) & (cols[None, None, :] < sizes[:, 1:, None])
        mask[i, : f.shape[0], 0] = cells.to(dtype)
        bank[i, : f.shape[0]] = f.to(device=device, dtype=dtype) * mask[i, : f.shape[0]]
    return bank, mask


def pad_bank_places(feature_bank: Sequence[dict], num_slots: int, device: torch.device,
                    dtype: torch.dtype) -> torch.Tensor:
    """
    The bank entries' boxes as padded (N, M, 4) (``num_slots`` = M of :func:`pad_bank`; zeros
    in empty slots), normalised XYXY as the window's "boxes".

    Raises:
        ValueError: a window with entries but no "boxes", or boxes outside [0, 1] (not normalised).
    """
    out = torch.zeros((len(feature_bank), num_slots, 4), dtype=dtype, device=device)
    for i, b in enumerate(feature_bank):
        num = len(b["features"])
        if num == 0:
            continue
        if "boxes" not in b:
            raise ValueError(
                f"clip {i}: its feature-bank window has no 'boxes' but MODEL.FEATURE_BANK."
                "PLACE_ENCODING needs the entries' places (read the window with frame_size, as "
                "FeatureBankDatasetMapper does)")
        boxes = torch.as_tensor(b["boxes"]).to(device=device, dtype=dtype).reshape(-1, 4)
        if len(boxes) != num or boxes.min() < -0.01 or boxes.max() > 1.01:
            raise ValueError(f"clip {i}: bank window 'boxes' must be ({num}, 4) normalised to "
                             f"[0, 1], got {tuple(boxes.shape)} in [{boxes.min():.3g}, {boxes.max():.3g}]")
        out[i, :num] = boxes
    return out


def _bank_args(cfg) -> dict:
    fb = cfg.MODEL.FEATURE_BANK
    return {"bank_layers": fb.NUM_LAYERS, "bank_dropout": fb.DROPOUT}


class _BankHeadMixin:
    """``forward`` with the ``feature_bank`` argument; subclasses implement ``predict_logits`` and
    set ``bank_kind``."""

    def empty_bank(self) -> dict:
        """A window without entries (shape (0, C, 1, 1); any spatial size is accepted empty)."""
        return {"features": torch.zeros((0, 1, 1, 1)), "valid_sizes": torch.zeros((0, 2)),
                "times": torch.zeros((0,), dtype=torch.long), "boxes": torch.zeros((0, 4))}

    def forward(
        self,
        features: Dict[str, torch.Tensor],
        boxes: List[Boxes],
        valid_sizes: List[Tuple[int, int]],
        image_size: Tuple[int, int],
        gt_actions: Optional[torch.Tensor] = None,
        feature_bank: Optional[Sequence[dict]] = None,
    ):
        """As :meth:`ActionROIHeads.forward`, plus ``feature_bank`` (N dicts, module docstring)."""
        self.check_inputs(features, boxes, valid_sizes)
        if feature_bank is None:
            if self.training:
                raise ValueError(
                    f"{type(self).__name__} needs feature_bank in training (the model input key "
                    "'feature_bank', added by acar_d2.data.feature_bank.FeatureBankDatasetMapper "
                    "from MODEL.FEATURE_BANK.DIR)"
                )
            # Inference on inputs without a bank (e.g. a raw video in tools/demo.py): an empty
            # memory, i.e. the bank blocks are the identity. Said once, since results degrade.
            log_first_n(logging.WARNING, f"{type(self).__name__}: inputs carry no 'feature_bank'; "
                        "running with an empty memory (bank blocks = identity)", n=1)
            feature_bank = [self.empty_bank()] * len(boxes)
        if len(feature_bank) != len(boxes):
            raise ValueError(f"{len(boxes)} clips but {len(feature_bank)} feature banks")
        logits = self.predict_logits(features, boxes, valid_sizes, image_size, feature_bank)
        losses = self.losses(logits, gt_actions) if gt_actions is not None else {}
        return logits, losses



@ROI_HEADS_REGISTRY.register()
class ACFBROIHeads(_BankHeadMixin, ACARROIHeads):
    """
    ACAR + Actor-Context Feature Bank: first-order relation maps (R, hidden, h', w') ->
    ``hr2o_depth`` HR2O blocks (0 in the paper's ACFB model) -> ``bank_layers``
    :class:`BankAttentionBlock` on the bank window -> average over valid cells -> classifier.
    The bank must hold maps of the same (hidden, h', w') (extracted by an ACAR model with the
    same head widths, clip size and ``DOWNSAMPLE``).
    """

    bank_kind = "acfb"

    @configurable
    def __init__(self, *, bank_layers: int = 2, bank_dropout: float = 0.2,
                 place_encoding: str = "none", **kwargs):
        """
        Args:
            bank_layers: stacked bank-attention blocks (ACAR: 2).
            bank_dropout: dropout inside each block.
            place_encoding: "none" (the paper) or "box_centre": the attention score also compares
                the current actor's box centre with each bank entry's (the window's "boxes"), so
                an actor can find its own past entries (:class:`BankAttentionBlock`).
            kwargs: see :class:`ACARROIHeads`.
        """
        super().__init__(**kwargs)
        if place_encoding not in PLACE_ENCODINGS:
            raise ValueError(f"place_encoding {place_encoding!r} not in {sorted(PLACE_ENCODINGS)}")
        self.place_freqs = PLACE_ENCODINGS[place_encoding]
        # Output conv of each block as HR2O's (3x3, or 1x1 with HR2O_MLP_1X1 as the R101 model).
        out_k = 1 if kwargs.get("hr2o_mlp_1x1", False) else 3
        self.bank_blocks = nn.ModuleList(
            BankAttentionBlock(self.hidden_dim, kernel_size=3, out_kernel_size=out_k,
                               dropout=bank_dropout, place_dim=4 * self.place_freqs)
            for _ in range(int(bank_layers))
        )

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        ret.update(_bank_args(cfg))
        ret["place_encoding"] = cfg.MODEL.FEATURE_BANK.PLACE_ENCODING
        return ret

    def places(self, boxes: List[Boxes], valid_sizes: List[Tuple[int, int]],
               feature_bank: Sequence[dict], num_slots: int, like: torch.Tensor):
        """(R, P) place encodings of the current actors (boxes normalised by each clip's valid
        size, the frame) and (N, M, P) of the bank entries; (None, None) without PLACE_ENCODING."""
        if not self.place_freqs:
            return None, None
        cur = torch.cat([b.tensor / b.tensor.new_tensor([w, h, w, h])
                         for b, (h, w) in zip(boxes, valid_sizes)]).to(like.dtype)
        bank = pad_bank_places(feature_bank, num_slots, like.device, like.dtype)
        return place_encoding(cur, self.place_freqs), place_encoding(bank, self.place_freqs)

    def predict_logits(self, features, boxes, valid_sizes, image_size, feature_bank=None):
        reduced, crop = self.reduce_context(features, image_size, valid_sizes)
        actor = self.roi_features(reduced, boxes, image_size)
        if actor.shape[0] == 0:
            return actor.new_zeros((0, self.num_classes)) + 0.0 * reduced.sum()
        layout = ClipActorLayout([len(b) for b in boxes], actor.device)
        maps, region = self.first_order_maps(self.mask_to_valid(reduced, crop), actor, layout, crop)
        mask = region.mask()
        maps = self.high_order(maps, layout, region)
        bank, bank_mask = pad_bank(feature_bank, maps.device, maps.dtype, maps.shape[1:])
        place, bank_place = self.places(boxes, valid_sizes, feature_bank, bank.shape[1], maps)
        for block in self.bank_blocks:
            maps = block(maps, layout, mask, bank, bank_mask, place, bank_place)
        return self.classify(actor, masked_mean(maps, mask))


@ROI_HEADS_REGISTRY.register()
class LFBROIHeads(_BankHeadMixin, ActionROIHeads):
    """
    LFB baseline: actor features ``S`` = [RoI(slow), RoI(fast)] (the "3D-CNN" head's), bank
    entries ``L`` = such vectors of every actor in the window (from the extraction model); both
    reduced to ``hidden_dim`` by linear layers, ``bank_layers`` non-local Feature Bank Operator
    blocks (1x1 :class:`BankAttentionBlock`), then ``fc(dropout([S, FBO(S, L)]))``.
    """

    bank_kind = "lfb"
    class_row_tensors = ("fc.weight",)

    @configurable
    def __init__(self, *, hidden_dim: int = 512, bank_layers: int = 2, bank_dropout: float = 0.2,
                 **kwargs):
        """
        Args:
            hidden_dim: width of the operator (LFB: 512).
            bank_layers: stacked FBO blocks (LFB NL: 2).
            bank_dropout: dropout of the reduction and inside each block (LFB: 0.2).
            kwargs: see :class:`ActionROIHeads`.
        """
        super().__init__(**kwargs)
        in_dim = sum(self.in_channels)
        self.hidden_dim = int(hidden_dim)
        self.reduce_query = nn.Linear(in_dim, self.hidden_dim)
        self.reduce_bank = nn.Linear(in_dim, self.hidden_dim)
        self.reduce_dropout = nn.Dropout(bank_dropout)
        self.bank_blocks = nn.ModuleList(
            BankAttentionBlock(self.hidden_dim, kernel_size=1, out_kernel_size=1,
                               dropout=bank_dropout)
            for _ in range(int(bank_layers))
        )
        self.dropout = nn.Dropout(self.dropout_p) if self.dropout_p > 0 else nn.Identity()
        self.fc = nn.Linear(in_dim + self.hidden_dim, self.num_classes, bias=False)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        ret.update(_bank_args(cfg))
        ret["hidden_dim"] = cfg.MODEL.ACTION_HEAD.HIDDEN_DIM
        if cfg.MODEL.FEATURE_BANK.PLACE_ENCODING != "none":
            raise ValueError(f"MODEL.FEATURE_BANK.PLACE_ENCODING "
                             f"{cfg.MODEL.FEATURE_BANK.PLACE_ENCODING!r} is an ACFB option; "
                             "LFBROIHeads has no place term (set it to 'none')")
        return ret

    def actor_features(self, features, boxes, valid_sizes, image_size) -> torch.Tensor:
        """(R, sum(in_channels)) [RoI(slow), RoI(fast)] max-pooled RoIAlign features."""
        pooled, _ = self.pooled_context(features, image_size, valid_sizes)
        return torch.cat([self.roi_features(p, boxes, image_size) for p in pooled], dim=1)

    def predict_logits(self, features, boxes, valid_sizes, image_size, feature_bank=None):
        actor = self.actor_features(features, boxes, valid_sizes, image_size)
        layout = ClipActorLayout([len(b) for b in boxes], actor.device)
        in_dim = actor.shape[1]
        bank, bank_mask = pad_bank(feature_bank, actor.device, actor.dtype,
                                   (actor.shape[1], 1, 1))
        n, m = bank.shape[:2]
        if bank.shape[2] != in_dim or bank.shape[-2:] != (1, 1):
            raise ValueError(
                f"LFB bank entries are {tuple(bank.shape[2:])}, expected ({in_dim}, 1, 1): the "
                "bank was extracted from a model with another backbone width or of kind 'acfb'"
            )
        bank_h = self.reduce_dropout(self.reduce_bank(bank.reshape(n * m, in_dim)))
        bank_h = bank_h.view(n, m, self.hidden_dim, 1, 1) * bank_mask
        x = self.reduce_dropout(self.reduce_query(actor))[:, :, None, None]
        ones = torch.ones_like(x[:, :1])
        for block in self.bank_blocks:
            x = block(x, layout, ones, bank_h, bank_mask)
        return self.fc(self.dropout(torch.cat([actor, x[:, :, 0, 0]], dim=1)))


@torch.no_grad()
def compute_bank_entries(
    head: ActionROIHeads,
    kind: str,
    features: Dict[str, torch.Tensor],
    boxes: List[Boxes],
    valid_sizes: List[Tuple[int, int]],
    image_size: Tuple[int, int],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    What a bank stores for N clips of one size, from a trained model's head (eval mode).

    Args:
        head: the extraction model's head; "acfb" needs an :class:`ActorContextROIHeads` (ACAR
            included, without a bank), "lfb" any :class:`ActionROIHeads`.
        kind: "acfb" (first-order relation maps after the head's down-sampling = the HR2O input)
            or "lfb" ([RoI(slow), RoI(fast)] vectors).
        features, boxes, valid_sizes, image_size: as the head contract.

    Returns:
        entries (R, C, h', w') (LFB: (R, C, 1, 1)), valid sizes (R, 2) long, clip-major.
    """
    if kind not in BANK_KINDS:
        raise ValueError(f"bank kind {kind!r} not in {BANK_KINDS}")
    num = sum(len(b) for b in boxes)
    if kind == "lfb":
        pooled, _ = head.pooled_context(features, image_size, valid_sizes)
        actor = torch.cat([head.roi_features(p, boxes, image_size) for p in pooled], dim=1)
        return actor[:, :, None, None], torch.ones((num, 2), dtype=torch.long, device=actor.device)
    if not isinstance(head, ActorContextROIHeads) or bank_kind_of(head):
        raise TypeError(
            f"an ACFB bank is made by an ACAR / actor-context model without a bank, not by "
            f"{type(head).__name__} (MODEL.ROI_HEADS.NAME of the extraction config)"
        )
    reduced, crop = head.reduce_context(features, image_size, valid_sizes)
    actor = head.roi_features(reduced, boxes, image_size)
    counts = [len(b) for b in boxes]
    if num == 0:  # no actor: one dummy actor gives the entry shape, zero rows are returned
        actor, counts = reduced.new_zeros((1, head.reduce_dim)), [1] + [0] * (len(boxes) - 1)
    layout = ClipActorLayout(counts, reduced.device)
    maps, region = head.first_order_maps(head.mask_to_valid(reduced, crop), actor, layout, crop)
    return maps[:num], region.sizes[:num]
