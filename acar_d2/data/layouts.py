"""
Where the files of a dataset are: candidate paths resolved when a split is loaded.

AVA users have the same data under different names (PySlowFast, ACAR-Net, MMAction2 layouts). A
registered split can name a :class:`FirstExisting` list instead of one path: the first candidate
on disk is used when the split is loaded (not when it is registered, so data may arrive after
``import acar_d2``), and a missing required file is an error that lists every candidate.

:func:`ava_proposal_candidates`, :func:`ava_frame_roots` and :func:`ava_frame_lists` are the
search orders of the builtin AVA splits (documented in datasets/README.md). No detectron2 import.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

__all__ = ["FirstExisting", "resolve_path", "check_not_pickle", "ava_proposal_candidates",
           "set_split_files", "split_file_overrides", "apply_dataset_config",
           "ava_frame_roots", "ava_frame_lists"]


@dataclass(frozen=True)
class FirstExisting:
    """
    Candidate paths, the first existing one wins.

    Attributes:
        paths: candidates in order of preference.
        what: the role, for messages ("proposal file of ava_v2.2_val").
        required: no candidate on disk is an error (False: resolves to None).
        folder: candidates are folders (else files).
    """

    paths: Tuple[str, ...]
    what: str = "file"
    required: bool = True
    folder: bool = False

    def resolve(self) -> Optional[str]:
        exists = os.path.isdir if self.folder else os.path.isfile
        for p in self.paths:
            if exists(p):
                return p
        if self.required:
            listed = "\n  ".join(self.paths)
            raise FileNotFoundError(f"no {self.what} found; looked for (in this order):\n  {listed}")
        return None

    def __str__(self) -> str:  # what the metadata shows before the split is loaded
        return " | ".join(self.paths)


PathOrCandidates = Union[None, str, FirstExisting]


def resolve_path(value: PathOrCandidates) -> Optional[str]:
    """A plain path (or None) as is; a :class:`FirstExisting` resolved now."""
    if isinstance(value, FirstExisting):
        return value.resolve()
    return value


def check_not_pickle(path: Optional[str], role: str = "ground-truth CSV") -> None:
    """
    A pickle passed where a CSV is expected (e.g. ACAR-Net's ``ava_val_v2.2_gt.pkl`` as the
    ground truth) is an error that says what to do, instead of a decoding error.
    """
    if not path or not os.path.isfile(path):
        return
    with open(path, "rb") as f:
        head = f.read(2)
    if path.endswith((".pkl", ".pickle")) or (len(head) == 2 and head[0] == 0x80 and head[1] <= 5):
        raise ValueError(
            f"{path} is a pickle, but a {role} (video_id,timestamp,x1,y1,x2,y2,action_id,"
            "person_id) is expected here. An ACAR-Net annotation pickle converts with "
            f"`python tools/convert_annotations.py acar-to-csv {path} OUT.csv`; a proposal "
            "pickle belongs in the proposal file (proposal_file / DATASETS.PROPOSAL_FILES_*)."
        )


def _ann(ann: str, *names: str) -> Tuple[str, ...]:
    return tuple(os.path.join(ann, n) for n in names)


# PySlowFast's pre-prepared person boxes (its configs/AVA/*.yaml TRAIN_PREDICT_BOX_LISTS /
# TEST_PREDICT_BOX_LISTS) live in this folder of annotations/; some copies sit in annotations/.
PYSLOWFAST_BOX_DIR = "person_box_67091280_iou90"
# PySlowFast's train box file per AVA version: v2.1's has no version suffix.
_PYSLOWFAST_TRAIN_BOXES = {
    "v2.1": ("ava_detection_train_boxes_and_labels_include_negative.csv",
             "ava_detection_train_boxes_and_labels_include_negative_v2.1.csv"),
    "v2.2": ("ava_detection_train_boxes_and_labels_include_negative_v2.2.csv",),
}


def _pyslowfast_boxes(split: str, version: str) -> Tuple[str, ...]:
    """
    PySlowFast's detection CSVs of a split, each in ``person_box_67091280_iou90/`` (where its
    configs name them) before ``annotations/`` itself.
    """
    if split == "train":
        names = _PYSLOWFAST_TRAIN_BOXES.get(version, ())
    else:
        names = (f"ava_detection_{split}_boxes_and_labels.csv",)
    return tuple(p for n in names for p in (os.path.join(PYSLOWFAST_BOX_DIR, n), n))


def ava_proposal_candidates(ann: str, split: str, version: str = "v2.2") -> Tuple[str, ...]:
    """
    Person-proposal files of an AVA split, in search order: MMAction2 pickle, PySlowFast's
    predicted boxes and pre-prepared detection CSVs (:func:`_pyslowfast_boxes`), ACAR-Net's
    detection pickles; for train last the other version's PySlowFast CSVs (the same detector's
    person boxes, only their labels, unused here, differ).
    """
    if split == "train":
        other = "v2.1" if version == "v2.2" else "v2.2"
        return _ann(
            ann,
            "dense_proposals_train.pkl",
            "ava_train_predicted_boxes.csv",
            *_pyslowfast_boxes(split, version),
            f"ava_train_{version}_with_fair_0.9.pkl",
            *_pyslowfast_boxes(split, other),
        )
    return _ann(
        ann,
        f"dense_proposals_{split}.pkl",
        f"ava_{split}_predicted_boxes.csv",
        *_pyslowfast_boxes(split, version),
        f"ava_{split}_{version}_fair_0.85.pkl",
    )


def ava_frame_roots(ava: str) -> Tuple[str, ...]:
    """Frame folders: PySlowFast's ``frames/<vid>/<vid>_%06d.jpg``, ACAR-Net's ``data/<vid>/image_%06d.jpg``."""
    return (os.path.join(ava, "frames"), os.path.join(ava, "data"))


def ava_frame_lists(ava: str, split: str) -> Tuple[str, ...]:
    """PySlowFast frame lists (optional: the frame folders are listed when absent)."""
    return (os.path.join(ava, "frame_lists", f"{split}.csv"),)


# ---- Files set from the config ---------------------------------------------------------------
_SPLIT_OVERRIDES: Dict[str, Dict[str, object]] = {}
_OVERRIDABLE = ("proposal_file", "frame_root", "frame_list")


def set_split_files(name: str, **files) -> None:
    """
    Replace files of a registered AVA-format split (``proposal_file``, ``frame_root``,
    ``frame_list``) for its next load; None / "" leaves a file as registered.
    """
    unknown = set(files) - set(_OVERRIDABLE)
    if unknown:
        raise ValueError(f"set_split_files: unknown file role(s) {sorted(unknown)}; "
                         f"choose from {_OVERRIDABLE}")
    current = _SPLIT_OVERRIDES.setdefault(name, {})
    current.update({k: v for k, v in files.items() if v})


def split_file_overrides(name: str) -> Dict[str, object]:
    """The files set for split ``name`` (empty when none)."""
    return dict(_SPLIT_OVERRIDES.get(name, {}))


def apply_dataset_config(cfg) -> None:
    """
    Apply the dataset-file keys of ``cfg`` to the registered splits (call after the config is
    merged, before the loaders are built):

    - ``DATASETS.PROPOSAL_FILES_TRAIN`` / ``PROPOSAL_FILES_TEST`` (detectron2's keys): one
      proposal file per split of ``DATASETS.TRAIN`` / ``TEST`` ("" keeps the split's own);
    - ``DATASETS.AVA_FILES.FRAME_ROOT``: the frame folder of every AVA-format split used;
    - ``DATASETS.AVA_FILES.FRAME_LISTS`` False: ignore PySlowFast frame lists (list folders).
    """
    for names, files in ((cfg.DATASETS.TRAIN, cfg.DATASETS.PROPOSAL_FILES_TRAIN),
                         (cfg.DATASETS.TEST, cfg.DATASETS.PROPOSAL_FILES_TEST)):
        if files and len(files) != len(names):
            raise ValueError(f"DATASETS.PROPOSAL_FILES_* has {len(files)} entries for "
                             f"{len(names)} datasets {tuple(names)}; give one per dataset "
                             "(\"\" keeps a split's own file)")
        for i, name in enumerate(names):
            node = getattr(cfg.DATASETS, "AVA_FILES", None)
            frame_root = node.FRAME_ROOT if node is not None else ""
            set_split_files(name, proposal_file=files[i] if files else None, frame_root=frame_root)
            if node is not None and not node.FRAME_LISTS:
                _SPLIT_OVERRIDES[name]["frame_list"] = None
