"""
Classifier rows of a checkpoint matched to the model's classes (docs/CHECKPOINTS.md "Class
rows"): narrowing a model to a class subset (``DATASETS.CLASSES``) without training, and
fine-tuning a published model to another label map (``MODEL.WEIGHTS_CLASS_MAP "by_name"``).

A class table is ``{"ids": [...], "names": [...]}``: row i of the classifier is class ``ids[i]``
named ``names[i]``. The model's table is its dataset's metadata (``action_ids`` /
``action_classes``, a subset's original ids); a checkpoint's is its own ``"classes"`` entry
(written by ``ACARCheckpointer.save``), else ``MODEL.WEIGHTS_LABEL_MAP``, else (a class subset
only) the dataset's full label map.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ["CLASS_MAPS", "ClassRowError", "config_class_tables", "match_class_rows",
           "select_class_rows"]

logger = logging.getLogger(__name__)

CLASS_MAPS = ("by_id", "by_name")


class ClassRowError(ValueError):
    """A checkpoint's classifier rows cannot be matched to the model's classes."""


def _describe(table: dict, limit: int = 12) -> str:
    items = [f"{i}:{n}" for i, n in zip(table["ids"], table["names"])]
    return ", ".join(items[:limit]) + (f", ... ({len(items)} classes)" if len(items) > limit else "")


def match_class_rows(model: dict, file: dict, class_map: str = "by_id",
                     where: str = "the checkpoint") -> List[Optional[int]]:
    """
    For each model class, the checkpoint row holding it (None: a class the checkpoint lacks).

    Args:
        model, file: class tables (``ids``, ``names``).
        class_map: "by_id": label-map ids, checked by name (a class whose id names another
            class in the file is an error); "by_name": names (ids may differ).
    Raises:
        ClassRowError: "by_id" and a name mismatch; or "by_id" and a model id the file lacks.
    """
    if class_map not in CLASS_MAPS:
        raise ClassRowError(f"MODEL.WEIGHTS_CLASS_MAP must be one of {CLASS_MAPS}, got {class_map!r}")
    if class_map == "by_name":
        row_of = {str(n): r for r, n in enumerate(file["names"])}
        return [row_of.get(str(n)) for n in model["names"]]
    row_of = {int(i): r for r, i in enumerate(file["ids"])}
    rows = []
    for cid, name in zip(model["ids"], model["names"]):
        r = row_of.get(int(cid))
        if r is None:
            raise ClassRowError(
                f"class {cid}:{name} of the model is not among the classes of {where} "
                f"({_describe(file)}); to fine-tune to another label map set "
                "MODEL.WEIGHTS_CLASS_MAP by_name (rows follow names, new classes start fresh)")
        if file["names"][r] is not None and str(file["names"][r]) != str(name):
            raise ClassRowError(
                f"class id {cid} is {file['names'][r]!r} in {where} but {name!r} in the dataset: "
                "the label maps differ; set MODEL.WEIGHTS_LABEL_MAP to the file's label map, or "
                "MODEL.WEIGHTS_CLASS_MAP by_name to match classes by name")
        rows.append(r)
    return rows


def select_class_rows(state: Dict[str, torch.Tensor], model_state: Dict[str, torch.Tensor],
                      keys: Sequence[str], rows: List[Optional[int]], num_file_classes: int,
                      where: str = "the checkpoint") -> None:
    """
    Replace ``state[key]`` (N rows, one per checkpoint class) for each of ``keys`` by the model's
    K rows: row i = file row ``rows[i]``, or the model's own row i where ``rows[i]`` is None.

    Raises:
        ClassRowError: a tensor whose rows are not ``num_file_classes`` or whose other dims
        differ from the model's.
    """
    for key in keys:
        if key not in state:
            continue  # a file without the classifier: the strict load reports it
        t, own = state[key], model_state[key]
        if t.shape[0] != num_file_classes or tuple(t.shape[1:]) != tuple(own.shape[1:]):
            raise ClassRowError(
                f"{where}: {key} has shape {tuple(t.shape)}, expected {num_file_classes} class "
                f"rows of {tuple(own.shape[1:])} (the classes given for the file: set "
                "MODEL.WEIGHTS_LABEL_MAP to the label map it was trained with)")
        out = own.detach().clone().to(t.dtype)
        for i, r in enumerate(rows):
            if r is not None:
                out[i] = t[r]
        state[key] = out


def _table(meta, num_classes: int) -> Optional[dict]:
    ids, names = meta.get("action_ids", None), meta.get("action_classes", None)
    if ids is None or names is None or len(ids) != num_classes:
        return None
    return {"ids": [int(i) for i in ids], "names": [str(n) for n in names]}


def config_class_tables(cfg, purpose: str) -> Tuple[Optional[dict], Optional[dict], str]:
    """
    (the model's class table, the class table of a checkpoint without its own, where that one
    comes from) for ``cfg``: the metadata of ``DATASETS.TRAIN[0]`` ("train") or ``TEST[0]``
    ("eval"); ``MODEL.WEIGHTS_LABEL_MAP``, else with a class subset the dataset's full label map.
    None where unknown (then rows are loaded as they are).
    """
    from ava_eval.label_map import read_label_map
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = list(cfg.DATASETS.TRAIN if purpose == "train" else cfg.DATASETS.TEST)
    names = names or list(cfg.DATASETS.TRAIN) or list(cfg.DATASETS.TEST)
    model_table, meta = None, None
    if names and names[0] in DatasetCatalog.list():
        meta = MetadataCatalog.get(names[0])
        try:
            model_table = _table(meta, cfg.MODEL.ACTION_HEAD.NUM_CLASSES)
        except (OSError, ValueError):  # a label map not on disk: classes unknown
            model_table = None
    label_map = cfg.MODEL.get("WEIGHTS_LABEL_MAP", "")
    if label_map:
        lmap = read_label_map(label_map, require_groups=False)
        return model_table, {"ids": list(lmap.ids), "names": list(lmap.names)}, label_map
    if meta is not None and meta.get("label_map_ids", None) is not None:
        full = {"ids": list(meta.label_map_ids), "names": list(meta.label_map_classes)}
        return model_table, full, (f"the full label map of {names[0]} (a DATASETS.CLASSES "
                                   "subset; MODEL.WEIGHTS_LABEL_MAP not set)")
    return model_table, None, ""
