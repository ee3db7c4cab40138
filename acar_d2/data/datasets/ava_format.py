"""
Training-side readers of the AVA annotation files: ground-truth CSVs merged into one
:class:`PersonBox` per annotated person, and PySlowFast's predicted-box CSV.

The formats are parsed by :mod:`ava_eval.ava_format` (which documents them); this module adds the
training rules (8 columns, boxes inside [0, 1], integer person ids, ids outside the label map).
Bad input raises ``ValueError`` naming the file and the line.
"""
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set

import numpy as np

from ava_eval.ava_format import AVAKey, check_unit_boxes, read_box_csv

from ..formats.proposals import read_pyslowfast_boxes_csv

__all__ = ["PersonBox", "read_ava_annotations", "read_predicted_boxes_csv"]

logger = logging.getLogger(__name__)


@dataclass
class PersonBox:
    """One annotated person on a key frame: normalized box, dataset action ids, person id."""

    box: List[float]
    action_ids: List[int] = field(default_factory=list)
    person_id: int = -1


def read_ava_annotations(
    path: str, label_ids: Sequence[int], known_action_ids: Optional[Set[int]] = None
) -> "OrderedDict[AVAKey, List[PersonBox]]":
    """
    Read an AVA annotation CSV ``video_id,timestamp,x1,y1,x2,y2,action_id,person_id`` (parsed by
    :func:`ava_format.read_box_csv`) for training: 8 columns, boxes inside [0, 1], integer person
    ids. Rows of the same key frame, box and person are merged into one :class:`PersonBox` with
    all its action ids (AVA lists one row per action).

    Args:
        label_ids (list[int]): ids of the trained classes (the label map).
        known_action_ids (set[int] or None): ids that may appear but are not trained (e.g. AVA's
            80 ids vs the 60 evaluated classes); their rows are dropped (the person is kept), as
            the official evaluation's label-map filter does. Any other id is an error.
    Returns:
        OrderedDict[(video_id, timestamp), list[PersonBox]] in order of first appearance.
    """
    table = read_box_csv(path, groundtruth=True, num_columns=8)
    check_unit_boxes(table)
    person_ids = table.scores
    not_int = person_ids != np.floor(person_ids)
    if not_int.any():
        i = int(np.flatnonzero(not_int)[0])
        raise ValueError(f"{path}, line {int(table.lines[i])}: person_id {person_ids[i]} is not "
                         "an integer")
    label_ids, known = set(label_ids), set(known_action_ids or ())
    unknown = ~np.isin(table.labels, list(label_ids | known))
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise ValueError(f"{path}, line {int(table.lines[i])}: action_id {int(table.labels[i])} "
                         f"is not in the label map ({len(label_ids)} ids)")
    out: "OrderedDict[AVAKey, Dict[tuple, PersonBox]]" = OrderedDict(
        (k, OrderedDict()) for k in table.keyframes
    )
    for kf, box, action_id, pid in zip(table.keyframe.tolist(), table.boxes.tolist(),
                                       table.labels.tolist(), person_ids.astype(np.int64).tolist()):
        persons = out[table.keyframes[kf]]
        person = persons.setdefault((tuple(box), pid), PersonBox(box, [], pid))
        if action_id in label_ids and action_id not in person.action_ids:
            person.action_ids.append(action_id)
    num_dropped = int((~np.isin(table.labels, list(label_ids))).sum())
    if num_dropped:
        logger.info(f"{path}: dropped {num_dropped} rows of action ids outside the label map")
    return OrderedDict((k, list(v.values())) for k, v in out.items())


def read_predicted_boxes_csv(path: str) -> Dict[AVAKey, np.ndarray]:
    """
    Read PySlowFast's person-detection CSV ``video_id,timestamp,x1,y1,x2,y2,[action],score``.

    The action column is empty or ignored; repeated boxes of a key frame (one row per action in
    some files) are kept once, with their highest score.

    Returns:
        dict[(video_id, timestamp), float32 ndarray (R, 5)]: normalized x1, y1, x2, y2, score.
    """
    return read_pyslowfast_boxes_csv(path)
