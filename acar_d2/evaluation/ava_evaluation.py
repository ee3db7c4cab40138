"""
``AVAEvaluator``: frame-mAP@0.5 of an action detector during ``inference_on_dataset``.

Follows detectron2's ``PascalVOCDetectionEvaluator``: ``reset`` / ``process`` collect predictions
per key frame, ``evaluate`` gathers them on the main process, writes the official submission CSV
and scores it with :func:`frame_map.frame_map` (the official AVA v2.2 protocol).
"""
import itertools
import logging
import math
import os
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Union

import numpy as np

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ava_eval.csv_io import (BoxTable, format_submission_rows, parse_box_csv, read_box_csv,
                             read_exclusions)
from ava_eval.frame_map import DETECTIONS_PER_KEYFRAME, FrameMAPResult, frame_map
from ava_eval.label_map import LabelMap, read_label_map
from ..data.layouts import resolve_label_map
from ava_eval.reporting import per_class_table as _format_table

__all__ = ["AVAEvaluator", "UCF24Evaluator", "per_class_table", "table_from_dataset_dicts"]

logger = logging.getLogger(__name__)


def per_class_table(result: FrameMAPResult, label_map: Dict[int, str]) -> str:
    """A text table: id, name, group, #GT, #detections, AP (percent), one row per label-map class."""
    groups = getattr(label_map, "groups", None)
    group_of = dict(zip(label_map, groups)) if groups is not None else {}
    return _format_table([(cid, name, group_of.get(cid), result.num_gt[cid],
                           result.num_detections[cid], 100.0 * result.per_class_AP[cid])
                          for cid, name in sorted(label_map.items())])


def table_from_dataset_dicts(
    dataset_dicts: Iterable[dict], source: str = "dataset dicts"
) -> BoxTable:
    """
    Ground truth from acar_d2 dataset dicts (docs/ARCHITECTURE.md), as a :class:`BoxTable`.

    Every annotation contributes one row per entry of its ``action_ids``, with its ``bbox``
    (XYXY_ABS pixels) divided by the dict's width / height, so it compares with predictions
    written in the normalized submission format. The person id (if any) fills ``scores``.

    Raises:
        KeyError / ValueError: naming the video, timestamp and missing key or bad box.
    """
    from detectron2.structures import BoxMode

    index = {}
    keyframe, boxes, labels, person = [], [], [], []
    for d in dataset_dicts:
        where = f"{source}: {d.get('video_id')!r} @ {d.get('timestamp')!r}"
        for key in ("video_id", "timestamp", "height", "width", "annotations"):
            if key not in d:
                raise KeyError(f"{where}: dataset dict has no {key!r}")
        kf = index.setdefault((str(d["video_id"]), int(d["timestamp"])), len(index))
        w, h = float(d["width"]), float(d["height"])
        for ann in d["annotations"]:
            if "bbox" not in ann or "action_ids" not in ann:
                raise KeyError(f"{where}: annotation without 'bbox' or 'action_ids': {ann}")
            box = BoxMode.convert(list(ann["bbox"]), ann.get("bbox_mode", BoxMode.XYXY_ABS),
                                  BoxMode.XYXY_ABS)
            norm = [box[0] / w, box[1] / h, box[2] / w, box[3] / h]
            if not (all(map(math.isfinite, norm)) and norm[0] <= norm[2] and norm[1] <= norm[3]):
                raise ValueError(f"{where}: invalid ground-truth box {list(ann['bbox'])}")
            for a in ann["action_ids"]:
                keyframe.append(kf)
                boxes.append(norm)
                labels.append(int(a))
                person.append(float(ann.get("person_id", 1.0)))
    n = len(labels)
    return BoxTable(
        source=source,
        keyframes=list(index),
        keyframe=np.asarray(keyframe, dtype=np.int64),
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        scores=np.asarray(person, dtype=np.float64),
        lines=np.arange(1, n + 1, dtype=np.int64),
    )


class AVAEvaluator(DatasetEvaluator):
    """
    Frame-mAP@0.5 over the key frames of a registered action dataset.

    Ground truth: the ``annotations`` / ``label_map`` / ``exclusions`` files (constructor
    arguments, else the metadata's ``gt_csv`` / ``label_map`` / ``exclusions``; the official
    inputs); without a ground-truth CSV, the dataset dicts themselves, with a label map built from
    ``action_ids`` / ``action_classes``.

    Results (detectron2 convention: percent, like the CLI): ``{"ava":
    {"frame_mAP@0.5": .., "AP-<name>": ..,
    "mAP-<group>": ..}}``; groups come from metadata ``class_groups`` (pose / person_object /
    person_person). Classes without ground truth are left out (NaN in the official output).
    """

    # Protocol to use; None: the dataset's metadata ``evaluator_type`` ("ava" or "ucf24").
    _EVALUATOR_TYPE: Optional[str] = None

    def __init__(
        self,
        dataset_name: str,
        output_dir: Optional[str] = None,
        distributed: bool = True,
        score_format: str = "%.6f",
        *,
        annotations: Optional[str] = None,
        label_map: Optional[str] = None,
        exclusions: Optional[str] = None,
        top_k: Union[int, None, str] = "default",
    ):
        """
        Args:
            dataset_name (str): a registered dataset with the metadata of docs/ARCHITECTURE.md.
            output_dir (str or None): where ``predictions_<dataset>.csv`` is written.
            distributed (bool): gather predictions from all ranks.
            score_format (str): printf format of the scores in the CSV (the CSV is what gets scored,
                so the file and the returned numbers always agree). Six decimals rather than
                three: 3-decimal scores create TP/FP score ties whose AP depends on numpy's
                unstable argsort (docs/EVALUATION_PROTOCOL.md).
            annotations, label_map, exclusions (str or None): override the metadata's files
                (``gt_csv``, ``label_map``, ``exclusions``: layouts.SPLIT_FILE_METADATA).
            top_k (int or None): detection rows kept per key frame; default: 50 for AVA (official
                cap), None (no cap) for UCF101-24 (``evaluator_type == "ucf24"``).
        """
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self._score_format = score_format
        self._metadata = MetadataCatalog.get(dataset_name)
        self._action_ids = list(self._metadata.action_ids)
        self._class_names = list(self._metadata.action_classes)
        self._gt_csv = annotations or self._metadata.get("gt_csv", None)
        # without label_map: the file the metadata's classes were read from
        self._label_map_file = label_map or resolve_label_map(
            self._metadata.get("label_map", None), self._metadata.get("label_map_fallback", None)
        )
        self._exclusions = exclusions or self._metadata.get("exclusions", None)
        kind = self._EVALUATOR_TYPE or self._metadata.get("evaluator_type", "ava")
        if kind not in ("ava", "ucf24"):
            raise ValueError(f"{dataset_name}: evaluator_type {kind!r} is not 'ava' or 'ucf24'")
        # Results are reported under the protocol's name; only AVA caps rows per key frame.
        self._results_key = kind
        if top_k == "default":
            top_k = None if kind == "ucf24" else DETECTIONS_PER_KEYFRAME
        self._top_k = top_k
        self._lines: List[str] = []

    def reset(self):
        self._lines = []

    def process(self, inputs, outputs):
        """
        Args:
            inputs (list[dict]): with "video_id", "timestamp", "height", "width".
            outputs (list[dict]): with "instances": ``pred_boxes`` in input height/width pixels,
                ``action_scores`` (R, K).
        """
        for inp, out in zip(inputs, outputs):
            inst = out["instances"].to("cpu")
            k = inst.action_scores.shape[1] if len(inst) else len(self._action_ids)
            if k != len(self._action_ids):
                raise ValueError(
                    f"{self._dataset_name}: model predicts {k} classes, the dataset has "
                    f"{len(self._action_ids)} (MODEL.ACTION_HEAD.NUM_CLASSES)"
                )
            if len(inst) == 0:
                continue
            scale = np.array([inp["width"], inp["height"], inp["width"], inp["height"]], np.float64)
            boxes = np.clip(inst.pred_boxes.tensor.numpy().astype(np.float64) / scale, 0.0, 1.0)
            self._lines.extend(
                format_submission_rows(
                    str(inp["video_id"]), int(inp["timestamp"]), boxes,
                    inst.action_scores.numpy(), self._action_ids, self._score_format,
                )
            )

    def _groundtruth(self):
        """(BoxTable, label map dict, excluded key frames): the CSV files if there is a ground-truth
        CSV, else the registered dataset dicts (with a label map from ``action_ids``)."""
        if self._gt_csv:
            gt = read_box_csv(self._gt_csv, groundtruth=True)
            label_map = dict(zip(self._action_ids, self._class_names))
            if self._label_map_file:
                full = read_label_map(self._label_map_file, require_groups=False)
                label_map = self._scored_classes(full)
                if len(label_map) < len(full):  # a class subset: its rows only, without a warning
                    gt = gt.select(np.isin(gt.labels, list(label_map.ids)))
            return gt, label_map, read_exclusions(self._exclusions)
        label_map = dict(zip(self._action_ids, self._class_names))
        dicts = DatasetCatalog.get(self._dataset_name)
        return table_from_dataset_dicts(dicts, source=self._dataset_name), label_map, set()

    def _scored_classes(self, label_map: LabelMap) -> LabelMap:
        """The classes of the label-map file that the metadata's ``action_ids`` name: all of them,
        or a class subset (``DATASETS.CLASSES``): the evaluation scores exactly those."""
        if list(label_map.ids) == self._action_ids:
            return label_map
        missing = [a for a in self._action_ids if a not in label_map]
        if missing:
            raise ValueError(f"{self._dataset_name}: action ids {missing} of the dataset's classes "
                             f"are not in the label map {self._label_map_file}")
        rows = [label_map.ids.index(a) for a in self._action_ids]
        return LabelMap([label_map.ids[i] for i in rows], [label_map.names[i] for i in rows],
                        [label_map.groups[i] for i in rows])

    def evaluate(self):
        if self._distributed:
            comm.synchronize()
            lines = list(itertools.chain(*comm.gather(self._lines, dst=0)))
            if not comm.is_main_process():
                return {}
        else:
            lines = self._lines
        data = ("\n".join(lines) + "\n").encode() if lines else b""
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            path = os.path.join(self._output_dir, f"predictions_{self._dataset_name}.csv")
            with open(path, "wb") as f:
                f.write(data)
            logger.info(f"Wrote {len(lines)} prediction rows to {path}")
        gt, label_map, excluded = self._groundtruth()
        det = parse_box_csv(data, f"predictions of {self._dataset_name}")
        result = frame_map(gt, det, label_map, excluded, top_k=self._top_k)
        logger.info(f"Frame-mAP@0.5 on {self._dataset_name}:\n" + per_class_table(result, label_map))

        res = OrderedDict()
        res["frame_mAP@0.5"] = 100.0 * result.mAP
        for cid, name in sorted(label_map.items()):
            ap = result.per_class_AP[cid]
            if not np.isnan(ap):
                res[f"AP-{name}"] = 100.0 * ap
        groups = self._metadata.get("class_groups", None) or {}
        id_of_index = dict(enumerate(self._action_ids))
        for group, indices in groups.items():
            aps = [result.per_class_AP.get(id_of_index[i], np.nan) for i in indices]
            aps = [a for a in aps if not np.isnan(a)]
            if aps:
                res[f"mAP-{group}"] = 100.0 * float(np.mean(aps))
        logger.info(
            "Frame-mAP@0.5 by class group: "
            + ", ".join(f"{k}={v:.2f}" for k, v in res.items() if k.startswith("mAP-"))
        )
        return {self._results_key: res}


class UCF24Evaluator(AVAEvaluator):
    """
    UCF101-24 frame-mAP@0.5 through the same machinery: per-class VOC AP at IoU 0.5 over the
    annotated frames (one action per box, every class score of every box is a detection), with
    no per-frame cap. Ground truth: the registered dataset dicts (``video_id``, ``timestamp`` =
    frame index, ``annotations``), or an AVA-style CSV given as ``annotations`` (constructor)
    or ``gt_csv`` (metadata). Results: ``{"ucf24": {"frame_mAP@0.5": .., "AP-<name>": ..}}`` in
    percent. Video-mAP (tube linking) is not implemented. ``AVAEvaluator`` on a dataset whose metadata
    says ``evaluator_type="ucf24"`` behaves the same.
    """

    _EVALUATOR_TYPE = "ucf24"
