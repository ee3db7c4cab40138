"""
Relation maps (ACAR Fig. 6): where in the scene an actor's high-order relation features draw on
the other actors, and on which actors.

The weights are those of the *last* HR2O block of :class:`ACARROIHeads` (the one whose output is
averaged and classified). For the official non-local operator (``HR2ONonLocal.attention``)::

    a_ij(y, x) = softmax_j <q_i(y, x), k_j(y, x)> / sqrt(C)

computed as an (N, M, M, h, w) tensor over (clip, actor i, actor j, cell) with the softmax over
**dim 2, the actors j of the clip, self included, separately at every cell (y, x)** of the relation
grid. So ``sum_j a_ij(y, x) = 1`` at every cell: the total mass is flat over the scene. What varies
is the share actor i takes from the *other* actors, which defines the two maps:

* ``context_map`` (R, h, w): ``c_i(y, x) = sum_{j != i} a_ij(y, x)``, normalised to sum 1 over the
  clip's valid cells (where actor i's relation features draw on actor-context features of other
  actors). An actor alone in its clip (or one that takes nothing from the others) gets the uniform
  map over the valid cells.
* ``actor_weights`` (R, R): ``w_ij = mean over the valid cells of a_ij(y, x)``, self included (the
  diagonal is what actor i keeps of its own actor-context features); rows sum to 1.

``gattn`` has the same softmax over j; ``avg`` has uniform weights ``1 / R_n``; ``rn`` has no
weights over actors and is refused (:class:`NotImplementedError`). Cells are those of the relation
grid handed to HR2O (context grid after the unpadded 3x3 ``conv2`` and ``DOWNSAMPLE``); a record
keeps the grid's place in the clip so that a map can be drawn on the key frame
(``acar_d2.utils.relations``).
"""
import contextlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from detectron2.structures import Instances

from .hr2o import HR2OBlock
from .layout import ClipActorLayout, ValidRegion

__all__ = ["RelationRecord", "check_relation_heads", "record_relations", "relations_recording", "relation_records",
           "take_relation_records", "add_relation_fields", "relation_grid_cells"]


@dataclass
class RelationRecord:
    """
    Relation maps of the R_n actors of one clip.

    Attributes:
        context_maps (Tensor): (R_n, h_n, w_n), the clip's valid relation cells, each map sums to 1.
        actor_weights (Tensor): (R_n, R_n), row i: actor i's weights on the clip's actors.
        grid (tuple[float, float, float, float]): ``(x0, y0, step_x, step_y)``: centre of cell
            (0, 0) and the spacing of cell centres, in context-grid cells (:meth:`in_pixels` turns
            them into pixels).
    """

    context_maps: torch.Tensor
    actor_weights: torch.Tensor
    grid: Tuple[float, float, float, float]

    def in_pixels(self, cell_wh: Tuple[float, float]) -> "RelationRecord":
        """The same record with ``grid`` in pixels, one context cell being ``cell_wh`` px."""
        (cw, ch), (x0, y0, sx, sy) = cell_wh, self.grid
        return RelationRecord(self.context_maps, self.actor_weights, (x0 * cw, y0 * ch, sx * cw, sy * ch))


def relation_grid_cells(downsample: str) -> Tuple[float, float]:
    """
    ``(offset, stride)`` of the relation grid in context cells (context cell c spans [c, c + 1)):
    relation cell u is centred at ``offset + stride * u``. The unpadded 3x3 ``conv2`` centres
    cell v on context cell v + 1; each 3x3 / stride 2 / pad 1 max pool centres u on cell 2u.
    """
    strides = {"none": 1, "2x2": 2, "4x4": 4}
    if downsample not in strides:
        raise NotImplementedError(
            f"relation maps need a spatial relation grid; DOWNSAMPLE {downsample!r} leaves one "
            "cell per clip (use 'none', '2x2' or '4x4')")
    return 1.5, float(strides[downsample])


def relation_records(
    attn: torch.Tensor, layout: ClipActorLayout, region: ValidRegion, downsample: str
) -> List[RelationRecord]:
    """
    Args:
        attn: (N, M, M, h, w) weights of actor slot i on slot j at each cell, summing to 1 over j.
        layout: clip of each of the R actors.
        region: valid relation cells of each actor (its clip's).
        downsample: the head's ``DOWNSAMPLE`` (grid geometry).
    Returns:
        list[RelationRecord]: N records, one per clip (empty tensors for a clip without actors).
    """
    offset, stride = relation_grid_cells(downsample)
    mask = region.mask().to(attn.dtype)  # (R, 1, h, w)
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
    counts = layout.actor_mask.sum(dim=1).tolist()
    records, start = [], 0
    for n in counts:
        if n == 0:
            records.append(RelationRecord(attn.new_zeros((0, 0, 0)), attn.new_zeros((0, 0)),
                                          (offset, offset, stride, stride)))
            continue
        hn, wn = (int(s) for s in region.sizes[start])
        records.append(RelationRecord(context[start:start + n, :hn, :wn],
                                      weights[start:start + n, :n], (offset, offset, stride, stride)))
        start += n
    return records


def check_relation_heads(model: nn.Module) -> nn.Module:
    """The ROI heads of ``model`` if they can record relation maps, else raise as
    :func:`record_relations` does."""
    heads = getattr(model, "roi_heads", model)
    blocks = getattr(heads, "hr2o", None)
    if blocks is None or len(blocks) == 0:
        raise ValueError(f"{type(heads).__name__} has no HR2O block: relation maps need "
                         "ACARROIHeads with MODEL.ACTION_HEAD.HR2O_DEPTH >= 1")
    last = blocks[-1]
    if type(last).attention is HR2OBlock.attention:
        last.attention(None, None)  # raises NotImplementedError naming the operator
    relation_grid_cells(heads.downsample)
    return heads


def relations_recording(model: nn.Module) -> bool:
    """Whether ``model`` (an ACARNet or its ROI heads) records relation maps now."""
    return getattr(getattr(model, "roi_heads", model), "relation_records", None) is not None


@contextlib.contextmanager
def record_relations(model: nn.Module) -> Iterator[nn.Module]:
    """
    Inside the block, inference of ``model`` (an :class:`ACARNet` or an :class:`ACARROIHeads`) adds
    ``relation_context_maps``, ``relation_actor_weights`` and ``relation_grid`` to the predicted
    ``Instances`` (:func:`add_relation_fields`). Outside it nothing is computed or stored::

        with record_relations(predictor.model):
            for kf in predictor("video.mp4"):
                rel = relation_map(kf.instances, 0)  # acar_d2.utils.relations

    Raises:
        ValueError: the heads have no HR2O block; NotImplementedError: the operator has no
        weights over actors (``rn``) or the grid is one cell (``DOWNSAMPLE global``).
    """
    heads = check_relation_heads(model)
    heads.relation_records = []
    try:
        yield model
    finally:
        del heads.relation_records  # back to the class default, None


def take_relation_records(
    heads: nn.Module, features: Dict[str, torch.Tensor], image_size: Tuple[int, int], num_clips: int
) -> List[RelationRecord]:
    """
    The records of the heads' last call (N clips), grids in clip px, and clear them.

    Args:
        features: the backbone features the heads read, name -> (N, C, T, h, w).
        image_size: (H, W) of the clips.
    """
    records = list(heads.relation_records)
    heads.relation_records.clear()
    h, w = features[heads.in_features[0]].shape[-2:]
    cell = (image_size[1] / w, image_size[0] / h)
    if not records:  # no actor in any clip: the heads stopped before HR2O
        offset, stride = relation_grid_cells(heads.downsample)
        empty = torch.zeros((0, 0, 0)), torch.zeros((0, 0))
        records = [RelationRecord(*empty, (offset, offset, stride, stride))] * num_clips
    if len(records) != num_clips:
        raise RuntimeError(f"{len(records)} relation records for {num_clips} clips")
    return [r.in_pixels(cell) for r in records]


def add_relation_fields(instances: Instances, record: Optional[RelationRecord],
                        scale_xy: Sequence[float] = (1.0, 1.0)) -> Instances:
    """
    Put ``record`` (grid in clip px) on ``instances`` (R rows, ``scale_xy`` = output px per clip px):
    ``relation_context_maps`` (R, h, w), ``relation_actor_weights`` (R, R) (column j = row j of
    these instances, as predicted), ``relation_grid`` (R, 4) ``x0, y0, step_x, step_y`` output px.
    """
    if record is None:
        return instances
    sx, sy = scale_xy
    x0, y0, step_x, step_y = record.grid
    grid = torch.tensor([x0 * sx, y0 * sy, step_x * sx, step_y * sy], dtype=torch.float32)
    r = len(instances)
    device = instances.pred_boxes.tensor.device if instances.has("pred_boxes") else grid.device
    maps = record.context_maps
    if maps.shape[0] != r:
        raise ValueError(f"relation record of {maps.shape[0]} actors for {r} instances")
    instances.relation_context_maps = maps.to(device)
    instances.relation_actor_weights = record.actor_weights.to(device)
    instances.relation_grid = grid.to(device).expand(r, 4).clone()
    return instances
