"""
Relation maps (ACAR Fig. 6): where in the scene an actor's high-order relation features draw on
the other actors, and on which actors.

One recorder, one type::

    with RelationRecorder(model) as rec:      # an ACARNet (or its ACARROIHeads)
        outputs = model(inputs)
    rec.maps[i][r]                            # RelationMap of actor r of output i
    rec.maps[i][r].to_json()                  # the demo's "relation" (docs/DEMO.md)

The weights are those of the *last* HR2O block of :class:`ACARROIHeads` (the one whose output is
averaged and classified). For the official non-local operator (``HR2ONonLocal.attention``)::

    a_ij(y, x) = softmax_j <q_i(y, x), k_j(y, x)> / sqrt(C)

computed as an (N, M, M, h, w) tensor over (clip, actor i, actor j, cell) with the softmax over
**dim 2, the actors j of the clip, self included, separately at every cell (y, x)** of the relation
grid. So ``sum_j a_ij(y, x) = 1`` at every cell: the total mass is flat over the scene. What varies
is the share actor i takes from the *other* actors, which defines the two parts of a map:

* ``context_map`` (h, w): ``c_i(y, x) = sum_{j != i} a_ij(y, x)``, normalised to sum 1 over the
  clip's valid cells (where actor i's relation features draw on actor-context features of other
  actors). An actor alone in its clip (or one that takes nothing from the others) gets the uniform
  map over the valid cells.
* ``actor_weights`` (R,): ``w_ij = mean over the valid cells of a_ij(y, x)``, self included (the
  diagonal is what actor i keeps of its own actor-context features); sums to 1.

``gattn`` has the same softmax over j; ``avg`` has uniform weights ``1 / R_n``; ``rn`` has no
weights over actors and is refused (:class:`NotImplementedError`). Cells are those of the relation
grid handed to HR2O (context grid after the unpadded 3x3 ``conv2`` and ``DOWNSAMPLE``). Their
place in the output image is computed once, by :func:`relation_grid`.

The recorder uses forward hooks (on the model, its heads and their last HR2O block), so the model
code neither knows about it nor computes anything extra when no recorder is active.
"""
import inspect
from dataclasses import dataclass
from functools import cached_property
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .roi_heads.hr2o import HR2OBlock
from .roi_heads.layout import ClipActorLayout

__all__ = ["RelationMap", "RelationRecorder", "relation_grid", "upsample_context_map",
           "chance_rate", "interaction_actor"]

_DOWNSAMPLE_STRIDES = {"none": 1, "2x2": 2, "4x4": 4}


@dataclass
class RelationMap:
    """
    One actor's relation map on an image (the predicted key frame).

    Attributes:
        actor_index (int): row of the actor in the prediction's ``Instances``.
        context_map (ndarray): (h, w) float64 on the relation grid, sums to 1.
        actor_weights (ndarray): (R,) float64, the actor's weights on the R actors of its clip
            (index-aligned with the ``Instances``, itself included), sum 1.
        grid (tuple[float, float, float, float]): ``x0, y0, step_x, step_y``: centre of cell (0, 0)
            and the spacing of the cell centres in image px.
        image_size (tuple[int, int]): (H_img, W_img).
    """

    actor_index: int
    context_map: np.ndarray
    actor_weights: np.ndarray
    grid: Tuple[float, float, float, float]
    image_size: Tuple[int, int]

    @property
    def peak_cell(self) -> Tuple[int, int]:
        """(row, col) of the largest ``context_map`` cell."""
        row, col = np.unravel_index(int(np.argmax(self.context_map)), self.context_map.shape)
        return int(row), int(col)

    @property
    def peak_xy(self) -> Tuple[float, float]:
        """The centre of :attr:`peak_cell` in image px."""
        (row, col), (x0, y0, sx, sy) = self.peak_cell, self.grid
        return x0 + col * sx, y0 + row * sy

    @cached_property
    def heatmap(self) -> np.ndarray:
        """(H_img, W_img) float64: ``context_map`` interpolated to the image, sums to 1."""
        return upsample_context_map(self.context_map, self.grid, self.image_size)

    def peak_in_box(self, box_xyxy: Sequence[float]) -> bool:
        """Whether :attr:`peak_xy` lies inside ``box_xyxy`` (x1, y1, x2, y2 image px; the border
        counts as inside)."""
        x, y = self.peak_xy
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
        return x1 <= x <= x2 and y1 <= y <= y2

    def to_json(self, digits: int = 6) -> dict:
        """
        The JSON form (the demo's ``"relation"`` of an actor, docs/DEMO.md): ``context_map`` (h
        rows of w), ``grid_size`` [h, w], ``grid_origin_xy`` / ``grid_step_xy`` (centre of cell
        (0, 0), spacing; px rounded to 2 decimals), ``actor_weights`` (R), ``peak_xy``.
        """
        x0, y0, sx, sy = self.grid
        px, py = self.peak_xy
        return {
            "context_map": np.round(self.context_map, digits).tolist(),
            "grid_size": [int(self.context_map.shape[0]), int(self.context_map.shape[1])],
            "grid_origin_xy": [round(x0, 2), round(y0, 2)],
            "grid_step_xy": [round(sx, 2), round(sy, 2)],
            "actor_weights": np.round(self.actor_weights, digits).tolist(),
            "peak_xy": [round(px, 2), round(py, 2)],
        }

    @classmethod
    def from_json(cls, doc: dict, actor_index: int, image_size: Tuple[int, int]) -> "RelationMap":
        """
        The map of :meth:`to_json` back (values as rounded there).

        Args:
            doc: one actor's ``"relation"``; actor_index: its place in the key frame's
                ``actors``; image_size: (H, W) of the key frame (the demo JSON's height, width).
        Raises:
            ValueError: ``grid_size`` disagrees with ``context_map``, or a key is missing.
        """
        missing = [k for k in ("context_map", "grid_size", "grid_origin_xy", "grid_step_xy",
                               "actor_weights") if k not in doc]
        if missing:
            raise ValueError(f"relation map of actor {actor_index}: no {missing}")
        cmap = np.asarray(doc["context_map"], np.float64)
        if list(cmap.shape) != [int(v) for v in doc["grid_size"]]:
            raise ValueError(f"relation map of actor {actor_index}: context_map is "
                             f"{list(cmap.shape)}, grid_size says {doc['grid_size']}")
        (x0, y0), (sx, sy) = doc["grid_origin_xy"], doc["grid_step_xy"]
        return cls(int(actor_index), cmap, np.asarray(doc["actor_weights"], np.float64),
                   (float(x0), float(y0), float(sx), float(sy)),
                   (int(image_size[0]), int(image_size[1])))


def relation_grid(downsample: str, cell_wh: Tuple[float, float]) -> Tuple[float, float, float, float]:
    """
    ``x0, y0, step_x, step_y`` of the relation grid in image px, one context (feature) cell being
    ``cell_wh`` px (context cell c spans [c, c + 1)): relation cell u is centred on context cell
    ``1.5 + stride * u``, because the unpadded 3x3 ``conv2`` centres cell v on context cell v + 1
    and each 3x3 / stride 2 / pad 1 max pool centres u on cell 2u.
    """
    if downsample not in _DOWNSAMPLE_STRIDES:
        raise NotImplementedError(
            f"relation maps need a spatial relation grid; DOWNSAMPLE {downsample!r} leaves one "
            "cell per clip (use 'none', '2x2' or '4x4')")
    offset, stride = 1.5, float(_DOWNSAMPLE_STRIDES[downsample])
    cw, ch = (float(v) for v in cell_wh)
    return offset * cw, offset * ch, stride * cw, stride * ch


def upsample_context_map(context_map: np.ndarray, grid: Sequence[float],
                         image_size: Tuple[int, int]) -> np.ndarray:
    """
    Bilinear interpolation between the cell centres (the outermost cells' values held to the
    image border), renormalised to sum 1.

    Args:
        context_map (ndarray): (h, w).
        grid: ``x0, y0, step_x, step_y`` in the image's px.
        image_size: (H_img, W_img).
    Returns:
        ndarray: (H_img, W_img) float64.
    """
    m = np.asarray(context_map, np.float64)
    h, w = m.shape
    x0, y0, sx, sy = (float(v) for v in grid)
    H, W = image_size
    # pixel centres in cell coordinates, clamped to the outermost cell centres
    gy = np.clip((np.arange(H) + 0.5 - y0) / sy, 0, h - 1)
    gx = np.clip((np.arange(W) + 0.5 - x0) / sx, 0, w - 1)
    iy, ix = np.minimum(gy.astype(int), max(h - 2, 0)), np.minimum(gx.astype(int), max(w - 2, 0))
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]
    iy1, ix1 = np.minimum(iy + 1, h - 1), np.minimum(ix + 1, w - 1)
    out = ((1 - fy) * (1 - fx) * m[iy][:, ix] + (1 - fy) * fx * m[iy][:, ix1]
           + fy * (1 - fx) * m[iy1][:, ix] + fy * fx * m[iy1][:, ix1])
    total = out.sum()
    return out / total if total > 0 else np.full((H, W), 1.0 / (H * W))


def _clip_relations(attn: torch.Tensor, layout: ClipActorLayout, mask: torch.Tensor):
    """
    Args:
        attn: (N, M, M, h, w) weights of actor slot i on slot j at each cell, summing to 1 over j.
        layout: clip of each of the R actors.
        mask: (R, 1, h, w) 1 on the valid relation cells of each actor (its clip's, top-left).
    Returns:
        list of N ``(context_maps (R_n, h_n, w_n), actor_weights (R_n, R_n))`` float64 CPU
        tensors, one per clip (empty for a clip without actors).
    """
    mask = mask.to(attn.dtype)
    a = layout.to_flat(attn)  # (R, M, h, w): actor i's weights over the slots j of its clip
    area = mask.sum(dim=(2, 3)).clamp(min=1.0)  # (R, 1)
    weights = (a * mask).sum(dim=(2, 3)) / area  # (R, M)
    h, w = a.shape[-2:]
    own = a.gather(1, layout.slot[:, None, None, None].expand(-1, 1, h, w))  # (R, 1, h, w)
    # Empty slots carry exp(finfo.min) = 0, so the mass on the others is 1 - a_ii.
    others = (1.0 - own).clamp(min=0.0) * mask
    total = others.sum(dim=(2, 3), keepdim=True)
    context = torch.where(total > 0, others / total.clamp(min=torch.finfo(attn.dtype).tiny),
                          mask / area[:, :, None, None])[:, 0]  # (R, h, w)
    rows, cols = mask[:, 0, :, 0].sum(dim=1), mask[:, 0, 0, :].sum(dim=1)  # valid cells
    out, start = [], 0
    for n in layout.actor_mask.sum(dim=1).tolist():
        if n == 0:
            out.append((torch.zeros((0, 0, 0), dtype=torch.float64),
                        torch.zeros((0, 0), dtype=torch.float64)))
            continue
        hn, wn = int(rows[start]), int(cols[start])
        out.append((context[start:start + n, :hn, :wn].detach().cpu().double(),
                    weights[start:start + n, :n].detach().cpu().double()))
        start += n
    return out


def _relation_heads(model: nn.Module) -> nn.Module:
    """The ROI heads of ``model`` (an ACARNet or the heads) if they can record relation maps."""
    heads = getattr(model, "roi_heads", model)
    blocks = getattr(heads, "hr2o", None)
    if blocks is None or len(blocks) == 0:
        raise ValueError(f"{type(heads).__name__} has no HR2O block: relation maps need "
                         "ACARROIHeads with MODEL.ACTION_HEAD.HR2O_DEPTH >= 1")
    if type(blocks[-1]).attention is HR2OBlock.attention:
        blocks[-1].attention(None, None)  # raises NotImplementedError naming the operator
    relation_grid(heads.downsample, (1.0, 1.0))
    return heads


class RelationRecorder:
    """
    Records the relation maps of every inference call of ``model`` made inside the ``with``
    block: :attr:`maps` gets one ``list[RelationMap]`` per predicted clip, in call and output
    order, one map per row of the clip's predicted ``Instances`` (an empty list for a clip
    without actors). The maps are in the px of the prediction: for an :class:`ACARNet` the
    output ``Instances`` (``height`` x ``width``), for bare heads the clip (H x W). Outside the
    block nothing is computed, and the outputs are the same inside and outside.

    Constructing one checks the model (the demo does so before writing anything).

    Raises:
        ValueError: the heads have no HR2O block; NotImplementedError: the operator has no
        weights over actors (``rn``) or the grid is one cell (``DOWNSAMPLE global``).
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.heads = _relation_heads(model)
        self.maps: List[List[RelationMap]] = []
        self._handles: list = []
        self._call: Optional[dict] = None  # the heads call in progress
        self._clips: list = []  # the model call's clips so far, heads (size group) order

    def __enter__(self) -> "RelationRecorder":
        hooks = [(self.heads, "register_forward_pre_hook", self._heads_called, {"with_kwargs": True}),
                 (self.heads.hr2o[-1], "register_forward_hook", self._last_block_ran, {}),
                 (self.heads, "register_forward_hook", self._heads_done, {})]
        if self.model is not self.heads:
            hooks += [(self.model, "register_forward_pre_hook", self._model_called, {}),
                      (self.model, "register_forward_hook", self._model_done, {})]
        self._handles = [getattr(m, register)(fn, **kw) for m, register, fn, kw in hooks]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._call, self._clips = [], None, []

    def _heads_called(self, heads, args, kwargs) -> None:
        if heads.training:
            return
        bound = inspect.signature(heads.forward).bind(*args, **kwargs).arguments
        (H, W), features = bound["image_size"], bound["features"]
        h, w = features[heads.in_features[0]].shape[-2:]
        self._call = {"cell_wh": (W / w, H / h), "image_size": (int(H), int(W)),
                      "num_clips": len(bound["boxes"]), "clips": None}

    def _last_block_ran(self, block, args, output) -> None:
        if block.training or self._call is None:
            return
        x, layout, mask = args
        with torch.no_grad():
            self._call["clips"] = _clip_relations(block.attention(x, layout), layout, mask)

    def _heads_done(self, heads, args, output) -> None:
        call, self._call = self._call, None
        if call is None:
            return
        clips = call["clips"]
        if clips is None:  # no actor in any clip: the heads stopped before HR2O
            clips = [(torch.zeros((0, 0, 0)), torch.zeros((0, 0)))] * call["num_clips"]
        if len(clips) != call["num_clips"]:
            raise RuntimeError(f"{len(clips)} relation maps for {call['num_clips']} clips")
        if self.model is heads:
            self.maps.extend(self._to_maps(c, call["cell_wh"], call["image_size"]) for c in clips)
        else:
            self._clips.extend((c, call["cell_wh"]) for c in clips)

    def _model_called(self, model, args) -> None:
        self._clips = []

    def _model_done(self, model, args, outputs) -> None:
        if model.training:
            return
        (inputs,) = args
        order = [i for group in model.group_by_clip_size(inputs) for i in group]
        by_input = dict(zip(order, self._clips))
        self._clips = []
        for i, (x, out) in enumerate(zip(inputs, outputs)):
            (clip, (cw, ch)), inst = by_input[i], out["instances"]
            valid_h, valid_w = tuple(x.get("valid_size", x["clip"].shape[-2:]))
            height, width = inst.image_size
            maps = self._to_maps(clip, (cw * width / valid_w, ch * height / valid_h), (height, width))
            if len(maps) != len(inst):
                raise RuntimeError(f"relation maps of {len(maps)} actors for {len(inst)} instances")
            self.maps.append(maps)

    def _to_maps(self, clip, cell_wh, image_size) -> List[RelationMap]:
        context_maps, actor_weights = clip
        grid = relation_grid(self.heads.downsample, cell_wh)
        size = (int(image_size[0]), int(image_size[1]))
        return [RelationMap(r, context_maps[r].numpy(), actor_weights[r].numpy(), grid, size)
                for r in range(len(context_maps))]


def chance_rate(box_xyxy: Sequence[float], image_size: Tuple[int, int]) -> float:
    """
    The rate at which a peak placed uniformly at random on the image falls in the box: the box's
    area inside the image over the image area (the key frame is the clip's valid region: the
    predictions are in key-frame px, padding excluded).

    Args:
        box_xyxy: x1, y1, x2, y2 px; image_size: (H_img, W_img).
    """
    H, W = image_size
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    w = max(0.0, min(x2, W) - max(x1, 0.0))
    h = max(0.0, min(y2, H) - max(y1, 0.0))
    return w * h / float(H * W)


def interaction_actor(action_scores: np.ndarray, pose_class_indices: Sequence[int]) -> Optional[int]:
    """
    The actor whose relation map the demo draws: the highest score of any interaction class
    (every class outside the pose softmax: person-object and person-person, where the paper's
    relations matter; all classes when every class is a pose). None without actors.

    Args:
        action_scores (ndarray): (R, K).
    """
    scores = np.asarray(action_scores, np.float64)
    if scores.shape[0] == 0:
        return None
    classes = [k for k in range(scores.shape[1]) if k not in set(int(i) for i in pose_class_indices)]
    if not classes:
        classes = list(range(scores.shape[1]))
    return int(np.argmax(scores[:, classes].max(axis=1)))
