"""
Class subsets of a registered action dataset (``cfg.DATASETS.CLASSES``, docs/CUSTOM_DATA.md
"Class subsets").

A subset keeps some classes of a split's label map, in label-map order, as the K contiguous model
classes: the split's metadata becomes that of the subset (``action_ids`` / ``action_classes``
keep the ORIGINAL label-map ids and names, ``pose_class_indices`` / ``class_groups`` index the
kept classes) and its dataset dicts keep only the kept labels. Everything that reads the metadata
(the clip mapper, the heads' pose softmax, the evaluator's class table, the demo's names, the
submission CSV) then works on the subset unchanged. The full table stays in the metadata as
``label_map_ids`` / ``label_map_classes`` (what a checkpoint of the whole dataset was trained on).

What happens to an annotated person left without labels follows the dataset's metadata
``unlabeled_persons``: "negative" (AVA and AVA-format splits, the default: the box stays, every
class a negative, as AVA keeps persons whose actions are outside its 60 classes) or "drop"
(UCF101-24: every box carries exactly one action). Key frames are never dropped here (training's
``DATALOADER.FILTER_EMPTY_ANNOTATIONS`` decides, as for a full split).
"""
import copy
import logging
from typing import Dict, List, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = [
    "apply_class_subset",
    "set_split_classes",
    "resolve_classes",
    "subset_class_table",
    "filter_dataset_dicts",
    "reset_class_subsets",
]

logger = logging.getLogger(__name__)

_CLASS_FIELDS = ("action_ids", "action_classes", "pose_class_indices", "class_groups")
# name -> (the split's own loader, its own metadata), saved when a subset is first set.
_FULL_SPLITS: Dict[str, Tuple[object, object]] = {}


def resolve_classes(classes: Sequence, ids: Sequence[int], names: Sequence[str],
                    where: str = "DATASETS.CLASSES") -> List[int]:
    """
    The label-map ids of ``classes`` (names or ids, mixed), in label-map order.

    Args:
        classes: e.g. ``["stand", "sit"]``, ``[3, 6]`` or ``["12"]`` (a name wins over an id).
        ids, names: the label map (index i: id ``ids[i]``, name ``names[i]``).
    Raises:
        ValueError naming ``where`` for an unknown or repeated class.
    """
    by_name = {str(n): int(i) for i, n in zip(ids, names)}
    known = {int(i) for i in ids}
    chosen = []
    for c in classes:
        if str(c) in by_name:
            cid = by_name[str(c)]
        elif str(c).strip().lstrip("-").isdigit() and int(c) in known:
            cid = int(c)
        else:
            shown = ", ".join(f"{i}:{n}" for i, n in zip(ids, names))
            raise ValueError(f"{where}: {c!r} is neither a class name nor a label-map id of "
                             f"{len(known)} classes ({shown[:400]})")
        if cid in chosen:
            raise ValueError(f"{where}: class {c!r} (id {cid}) is listed twice")
        chosen.append(cid)
    order = {int(i): k for k, i in enumerate(ids)}
    return sorted(chosen, key=order.__getitem__)


def subset_class_table(full: dict, keep_ids: Sequence[int]) -> dict:
    """
    The class fields of the subset ``keep_ids`` of ``full`` (the four ``_CLASS_FIELDS``).

    Pose (softmax) classes stay one softmax among the kept ones; a single kept pose class becomes
    a sigmoid class (a softmax over one class is always 1).
    """
    index = {int(a): i for i, a in enumerate(full["action_ids"])}
    old = [index[int(a)] for a in keep_ids]
    new_of_old = {o: n for n, o in enumerate(old)}
    pose = [new_of_old[i] for i in full.get("pose_class_indices", []) if i in new_of_old]
    if len(pose) == 1:
        logger.info(f"class subset: one pose class kept ({full['action_classes'][old[pose[0]]]}), "
                    "scored with a sigmoid instead of a one-class softmax")
        pose = []
    groups = {g: [new_of_old[i] for i in idx if i in new_of_old]
              for g, idx in (full.get("class_groups") or {}).items()}
    return {
        "action_ids": [int(full["action_ids"][i]) for i in old],
        "action_classes": [full["action_classes"][i] for i in old],
        "pose_class_indices": sorted(pose),
        "class_groups": groups,
    }


def filter_dataset_dicts(dicts: List[dict], keep_ids: Sequence[int],
                         unlabeled_persons: str = "negative") -> List[dict]:
    """
    Dataset dicts with only the labels of ``keep_ids`` (new dicts and annotations; the input is
    not modified). A person left without labels stays as a negative or is dropped
    (``unlabeled_persons`` "negative" / "drop").
    """
    if unlabeled_persons not in ("negative", "drop"):
        raise ValueError(f"unlabeled_persons must be 'negative' or 'drop', got {unlabeled_persons!r}")
    keep = {int(a) for a in keep_ids}
    out = []
    for d in dicts:
        anns = []
        for ann in d.get("annotations", []):
            labels = [a for a in ann["action_ids"] if int(a) in keep]
            if labels or unlabeled_persons == "negative":
                anns.append(dict(ann, action_ids=labels))
        out.append(dict(d, annotations=anns))
    return out


def _full_class_table(name: str) -> dict:
    meta = _FULL_SPLITS[name][1] if name in _FULL_SPLITS else MetadataCatalog.get(name)
    missing = [k for k in ("action_ids", "action_classes") if not hasattr(meta, k)]
    if missing:
        raise ValueError(f"DATASETS.CLASSES: dataset {name!r} has no {missing} metadata (is it a "
                         "registered action dataset?)")
    return {k: copy.deepcopy(meta.get(k, None) or ([] if k != "class_groups" else {}))
            for k in _CLASS_FIELDS}


def set_split_classes(name: str, classes: Sequence) -> Optional[List[int]]:
    """
    Make registered split ``name`` the subset ``classes`` of its own label map (names or ids;
    empty: the split as registered). Its ``DatasetCatalog`` loader and ``MetadataCatalog`` entry
    are replaced by the subset's (new objects: a metadata object already handed out keeps its
    classes); the split's own are kept and restored by an empty ``classes``.

    Returns:
        list[int] or None: the kept label-map ids (None: all).
    """
    if name not in DatasetCatalog.list():
        raise KeyError(f"DATASETS.CLASSES: dataset {name!r} is not registered")
    if not classes:
        if name in _FULL_SPLITS:
            loader, meta = _FULL_SPLITS.pop(name)
            DatasetCatalog.remove(name)
            DatasetCatalog.register(name, loader)
            MetadataCatalog.remove(name)
            MetadataCatalog[name] = meta
        return None
    full = _full_class_table(name)
    keep = resolve_classes(classes, full["action_ids"], full["action_classes"],
                           f"DATASETS.CLASSES (dataset {name})")
    if name not in _FULL_SPLITS:
        _FULL_SPLITS[name] = (DatasetCatalog[name], MetadataCatalog.get(name))
    loader, own_meta = _FULL_SPLITS[name]
    rule = own_meta.get("unlabeled_persons", "negative")
    DatasetCatalog.remove(name)
    DatasetCatalog.register(name, lambda: filter_dataset_dicts(loader(), keep, rule))
    meta = copy.copy(own_meta)  # same class, own __dict__ (lazy fields keep working)
    # Metadata.set refuses changed values; the object is new, its fields are written directly.
    meta.__dict__.update(subset_class_table(full, keep), label_map_ids=full["action_ids"],
                         label_map_classes=full["action_classes"], class_subset=list(keep))
    MetadataCatalog.remove(name)
    MetadataCatalog[name] = meta
    return keep


def reset_class_subsets() -> None:
    """Restore every split made a subset by :func:`set_split_classes` (tests, notebooks)."""
    for name in list(_FULL_SPLITS):
        set_split_classes(name, [])


def apply_class_subset(cfg) -> None:
    """
    Apply ``cfg.DATASETS.CLASSES`` to every split of ``DATASETS.TRAIN`` / ``TEST`` (empty: restore
    the splits as registered), and check the model keys against the subset: K classes need
    ``MODEL.ACTION_HEAD.NUM_CLASSES`` K, and a non-empty ``POSE_CLASS_INDICES`` must be the
    subset's pose classes. Called by ``setup_cfg`` after the config is merged.

    Raises:
        ValueError naming the key: unknown class, splits whose subsets differ, NUM_CLASSES /
        POSE_CLASS_INDICES not those of the subset.
    """
    classes = list(cfg.DATASETS.get("CLASSES", []) or [])
    names = list(dict.fromkeys(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)))
    kept = {}
    for name in names:
        if name in DatasetCatalog.list() and (classes or name in _FULL_SPLITS):
            kept[name] = set_split_classes(name, classes)
    if not classes:
        return
    tables = {n: (tuple(k), tuple(MetadataCatalog.get(n).action_classes)) for n, k in kept.items()}
    if len(set(tables.values())) > 1:
        raise ValueError("DATASETS.CLASSES selects different classes in the splits "
                         + "; ".join(f"{n}: {list(zip(*t))}" for n, t in tables.items())
                         + ": their label maps differ")
    if not kept:
        return
    meta = MetadataCatalog.get(next(iter(kept)))
    _check_model_keys(cfg, meta)


def _check_model_keys(cfg, meta) -> None:
    head = cfg.MODEL.ACTION_HEAD
    k = len(meta.action_ids)
    shown = ", ".join(f"{i}:{n}" for i, n in zip(meta.action_ids, meta.action_classes))
    if head.NUM_CLASSES not in (0, k):  # 0: taken from the subset (data/dataset_keys.py)
        raise ValueError(f"DATASETS.CLASSES keeps {k} classes ({shown[:300]}) but "
                         f"MODEL.ACTION_HEAD.NUM_CLASSES is {head.NUM_CLASSES}; set "
                         f"MODEL.ACTION_HEAD.NUM_CLASSES {k}")
    pose = list(meta.pose_class_indices)
    if list(head.POSE_CLASS_INDICES) and list(head.POSE_CLASS_INDICES) != pose:
        raise ValueError(f"MODEL.ACTION_HEAD.POSE_CLASS_INDICES {list(head.POSE_CLASS_INDICES)} "
                         f"are not the pose classes {pose} of the DATASETS.CLASSES subset "
                         f"({shown[:300]}); set it to {pose} or [] (taken from the subset)")
