"""
Person detection AP@0.5 on key frames (one class, VOC/COCO-style all-point interpolation) and the
``PersonDetectionEvaluator`` reporting it for the actor boxes ``ACARNet`` returns.
"""
import logging
from collections import OrderedDict
from typing import Dict, Hashable, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import Boxes, BoxMode, pairwise_iou
from detectron2.utils import comm

__all__ = ["person_ap", "PersonDetectionEvaluator"]

logger = logging.getLogger(__name__)


def person_ap(
    gt: Dict[Hashable, np.ndarray],
    detections: Dict[Hashable, Tuple[np.ndarray, np.ndarray]],
    iou_thresh: float = 0.5,
) -> Dict[str, float]:
    """
    Average precision of one class (exact, all-point interpolated precision envelope, as PASCAL
    VOC 2010+ and the AVA frame-mAP).

    Detections of all images are ranked by score (stable for ties); a detection is a true
    positive when its best-IoU ground-truth box of the same image has IoU >= ``iou_thresh`` and
    was not matched by a higher-scored detection (greedy, as VOC).

    Args:
        gt: image key -> (G, 4) XYXY boxes.
        detections: image key -> ((D, 4) XYXY boxes, (D,) scores); keys absent from ``gt`` count
            as images without persons.
    Returns:
        {"AP": AP in [0, 1] (nan without ground truth), "recall": max recall,
         "num_gt": G total, "num_det": D total}.
    """
    num_gt = int(sum(len(b) for b in gt.values()))
    records = []  # (score, image key, detection index)
    for key, (boxes, scores) in detections.items():
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        for j in range(len(scores)):
            records.append((-float(scores[j]), len(records), key, j))
    records.sort(key=lambda r: (r[0], r[1]))
    used = {k: np.zeros(len(v), bool) for k, v in gt.items()}
    ious = {}
    for key, (boxes, _) in detections.items():
        g = np.asarray(gt.get(key, np.zeros((0, 4))), np.float32).reshape(-1, 4)
        d = np.asarray(boxes, np.float32).reshape(-1, 4)
        ious[key] = pairwise_iou(Boxes(torch.as_tensor(d)), Boxes(torch.as_tensor(g))).numpy()
    tp = np.zeros(len(records))
    for r, (_, _, key, j) in enumerate(records):
        iou = ious[key]
        if iou.shape[1] == 0:
            continue
        best = int(iou[j].argmax())
        if iou[j, best] >= iou_thresh and not used[key][best]:
            used[key][best] = True
            tp[r] = 1
    if num_gt == 0:
        return {"AP": float("nan"), "recall": float("nan"), "num_gt": 0, "num_det": len(records)}
    ctp = np.cumsum(tp)
    recall = ctp / num_gt
    precision = ctp / np.arange(1, len(records) + 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    ap = float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))
    return {"AP": ap, "recall": float(recall[-1]) if len(recall) else 0.0,
            "num_gt": num_gt, "num_det": len(records)}


class PersonDetectionEvaluator(DatasetEvaluator):
    """
    Person AP@0.5 of the model's actor boxes (``pred_boxes`` + ``scores``, original key-frame px)
    against the ground-truth person boxes of the dataset's key frames (every annotated person,
    whatever its actions). Returns ``{"person_detection": {"AP50": %, "recall": %, ...}}``.

    The boxes are the actor boxes after the detector's ``TEST_SCORE_THRESH``, so this is the AP of
    what the action head sees (recall is capped by that threshold).
    """

    def __init__(self, dataset_name: str):
        self._dataset_name = dataset_name
        self._gt = {}
        for d in DatasetCatalog.get(dataset_name):
            boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
                     for a in d.get("annotations", [])]
            self._gt[(str(d["video_id"]), int(d["timestamp"]))] = np.array(
                boxes, np.float32).reshape(-1, 4)
        self.reset()

    def reset(self):
        self._dets: Dict[Tuple[str, int], Tuple[np.ndarray, np.ndarray]] = {}

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            inst = out["instances"].to("cpu")
            self._dets[(str(inp["video_id"]), int(inp["timestamp"]))] = (
                inst.pred_boxes.tensor.numpy(), inst.scores.numpy())

    def evaluate(self):
        all_dets = comm.gather(self._dets, dst=0)
        if not comm.is_main_process():
            return {}
        dets = {}
        for part in all_dets:
            dets.update(part)
        gt = {k: self._gt[k] for k in dets if k in self._gt}  # the key frames evaluated
        res = person_ap(gt, dets, 0.5)
        out = OrderedDict(AP50=100.0 * res["AP"], recall50=100.0 * res["recall"],
                          num_gt=res["num_gt"], num_det=res["num_det"])
        logger.info("Person detection on %s: AP@0.5 %.2f, recall %.2f (%d boxes, %d detections)",
                    self._dataset_name, out["AP50"], out["recall50"], res["num_gt"], res["num_det"])
        return {"person_detection": out}
