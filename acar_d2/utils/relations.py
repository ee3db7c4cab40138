"""
Relation maps on the key frame (ACAR Fig. 6) from a prediction recorded inside
``acar_d2.modeling.roi_heads.record_relations`` (definitions: ``roi_heads/relation_maps.py``).

:func:`relation_map` turns one actor's fields of the predicted ``Instances`` into a heat map over
the key frame, its actor weights and its peak; :func:`attention_peak_in_box` and
:func:`chance_rate` are what a benchmark of "does the map point at the right thing" needs.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from detectron2.structures import Instances

__all__ = ["RelationMap", "relation_map", "relation_document", "upsample_context_map",
           "attention_peak_in_box", "chance_rate", "interaction_actor"]


@dataclass
class RelationMap:
    """
    One actor's relation map.

    Attributes:
        actor_index (int): row of the actor in the prediction's ``Instances``.
        context_map (ndarray): (h, w) float64 on the relation grid, sums to 1.
        heatmap (ndarray): (H_img, W_img) float64, ``context_map`` interpolated to the key frame,
            sums to 1.
        actor_weights (ndarray): (R,) float64, the actor's weights on the R actors (itself
            included), sum 1.
        peak_cell (tuple[int, int]): (row, col) of the largest ``context_map`` cell.
        peak_xy (tuple[float, float]): that cell's centre in key-frame px.
        grid (tuple[float, float, float, float]): ``x0, y0, step_x, step_y``: centre of cell (0, 0)
            and the spacing of the cells in key-frame px.
        image_size (tuple[int, int]): (H_img, W_img).
    """

    actor_index: int
    context_map: np.ndarray
    heatmap: np.ndarray
    actor_weights: np.ndarray
    peak_cell: Tuple[int, int]
    peak_xy: Tuple[float, float]
    grid: Tuple[float, float, float, float]
    image_size: Tuple[int, int]


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


def relation_map(instances: Instances, actor_index: int,
                 image_size: Optional[Tuple[int, int]] = None) -> RelationMap:
    """
    The relation map of actor ``actor_index`` of a prediction (``Instances`` of ``ACARNet``, of
    ``VideoActionPredictor`` (``kf.instances``) or of ``ActionPredictor``) made while recording.

    Args:
        instances: with ``relation_context_maps`` (R, h, w), ``relation_actor_weights`` (R, R),
            ``relation_grid`` (R, 4) in ``instances.image_size`` px.
        actor_index: row of the actor.
        image_size: (H_img, W_img) of the heat map; default ``instances.image_size`` (the key
            frame); another size rescales the grid.
    Returns:
        RelationMap.
    """
    if not instances.has("relation_context_maps"):
        raise KeyError("the prediction has no relation maps: predict inside "
                       "`with acar_d2.modeling.roi_heads.record_relations(model):`")
    r = len(instances)
    if not 0 <= actor_index < r:
        raise IndexError(f"actor_index {actor_index} out of range for {r} actors")
    pred_h, pred_w = instances.image_size
    H, W = (int(pred_h), int(pred_w)) if image_size is None else (int(image_size[0]), int(image_size[1]))
    kx, ky = W / pred_w, H / pred_h
    x0, y0, sx, sy = (float(v) for v in instances.relation_grid[actor_index].cpu().numpy())
    grid = (x0 * kx, y0 * ky, sx * kx, sy * ky)
    cmap = instances.relation_context_maps[actor_index].detach().cpu().double().numpy()
    row, col = np.unravel_index(int(np.argmax(cmap)), cmap.shape)
    return RelationMap(
        actor_index=int(actor_index), context_map=cmap,
        heatmap=upsample_context_map(cmap, grid, (H, W)),
        actor_weights=instances.relation_actor_weights[actor_index].detach().cpu().double().numpy(),
        peak_cell=(int(row), int(col)),
        peak_xy=(grid[0] + col * grid[2], grid[1] + row * grid[3]),
        grid=grid, image_size=(H, W),
    )


def relation_document(instances: Instances, actor_index: int, digits: int = 6) -> dict:
    """
    One actor's relation fields as JSON values (the demo's ``"relation"``; px of
    ``instances.image_size``): ``context_map`` (h rows of w), ``grid_size`` [h, w],
    ``grid_origin_xy`` / ``grid_step_xy`` (centre of cell (0, 0), spacing), ``actor_weights`` (R,
    index-aligned with the instances, self included), ``peak_xy``.
    """
    cmap = instances.relation_context_maps[actor_index].detach().cpu().double().numpy()
    x0, y0, sx, sy = (float(v) for v in instances.relation_grid[actor_index].cpu().numpy())
    row, col = np.unravel_index(int(np.argmax(cmap)), cmap.shape)
    weights = instances.relation_actor_weights[actor_index].detach().cpu().double().numpy()
    return {
        "context_map": np.round(cmap, digits).tolist(),
        "grid_size": [int(cmap.shape[0]), int(cmap.shape[1])],
        "grid_origin_xy": [round(x0, 2), round(y0, 2)],
        "grid_step_xy": [round(sx, 2), round(sy, 2)],
        "actor_weights": np.round(weights, digits).tolist(),
        "peak_xy": [round(x0 + col * sx, 2), round(y0 + row * sy, 2)],
    }


def attention_peak_in_box(relation_map: RelationMap, box_xyxy: Sequence[float]) -> bool:
    """Whether the map's peak (cell centre, px) lies inside ``box_xyxy`` (x1, y1, x2, y2, px of
    the map's image; the border counts as inside)."""
    x, y = relation_map.peak_xy
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    return x1 <= x <= x2 and y1 <= y <= y2


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
