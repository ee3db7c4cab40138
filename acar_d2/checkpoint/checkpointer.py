"""
``ACARCheckpointer``: detectron2's checkpointer that also reads PySlowFast and official
ACAR-Net files, converting them with ``acar_d2.checkpoint.convert``, never runs code from a file
(``safe_pickle``), and with ``strict`` refuses weights that leave a model tensor unloaded or
mismatched. ``ACARCheckpointer.from_config`` applies the config's rules
(``MODEL.WEIGHTS_STRICT``, ``MODEL.ALLOW_UNSAFE_PICKLE``) for evaluation or training.
"""
import glob
import logging
import os
import re
from typing import Any, Dict, Mapping, Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch import nn

from .convert import (
    SOURCES,
    UNSAFE_PICKLE_HINT,
    convert_checkpoint_with_report,
    detect_source,
    load_checkpoint_object,
    save_detectron2_checkpoint,
)

from .class_rows import (
    CLASS_MAPS,
    ClassRowError,
    config_class_tables,
    match_class_rows,
    select_class_rows,
)
from .detector_weights import load_person_detector_weights
from .safe_pickle import UnsafePickleError

__all__ = [
    "ACARCheckpointer",
    "CheckpointMismatchError",
    "ClassRowError",
    "ResumeCheckpointError",
    "save_detectron2_checkpoint",
]

logger = logging.getLogger(__name__)

STRICT_HINT = "set MODEL.WEIGHTS_STRICT False to load it anyway (the listed tensors stay as built)"


class CheckpointMismatchError(RuntimeError):
    """Raised by a ``strict`` ``ACARCheckpointer`` when the model and the file disagree."""


class ResumeCheckpointError(RuntimeError):
    """The checkpoint named by ``last_checkpoint`` cannot be read; the message lists the others."""


class ACARCheckpointer(DetectionCheckpointer):
    """
    ``DetectionCheckpointer`` whose ``load`` also accepts PySlowFast ``.pyth``, PySlowFast Caffe2
    ``.pkl``, official ACAR-Net ``.pth.tar`` and ACAR backbone pretrain files (format detected
    from the content, or forced with ``source``).

    Missing / unexpected / shape-mismatched keys are logged like detectron2 does; with
    ``strict=True`` they raise ``CheckpointMismatchError`` naming the keys and the file, except
    the top-level modules of ``new_modules`` (e.g. ``{"roi_heads": "..."}``) when the file holds
    none of their keys: those are accepted as new and reported in one line each (a file with
    only some of them is still an error). Unknown keys of a foreign file always raise
    (``UnknownKeysError``) during conversion. Files are read without running code from them
    unless ``allow_unsafe_pickle`` (``acar_d2/checkpoint/safe_pickle.py``).

    ``person_detector_weights`` (``MODEL.PERSON_DETECTOR.WEIGHTS`` in ``from_config``): a
    detectron2 detector file loaded into ``model.person_detector`` before the file of ``load``
    (also ``load("")``), so that the file's own ``person_detector.*`` tensors win; it is not read
    when that file holds all of them (e.g. resuming a run) or the model has no detector.

    Class rows (docs/CHECKPOINTS.md "Class rows"): with ``classes`` (the model's class table,
    ``{"ids", "names"}``), a file's classifier rows (the head's ``class_row_tensors``) are matched
    to the model's classes through the file's own ``"classes"`` entry, else ``file_classes``:
    ``class_map`` "by_id" (label-map ids, checked by name) narrows an N-class file to a K-class
    subset; "by_name" also fine-tunes to another label map, the classes the file lacks keeping
    the model's initial rows (only with ``allow_new_classes``: training). ``save`` writes
    ``classes`` into every checkpoint.

    Example::

        ACARCheckpointer(model, strict=True).load("AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar")
        ACARCheckpointer.from_config(model, cfg, purpose="eval").load(cfg.MODEL.WEIGHTS)
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str = "",
        *,
        strict: bool = False,
        new_modules: Optional[Mapping[str, str]] = None,
        require_weights: bool = False,
        allow_unsafe_pickle: bool = False,
        source: str = "auto",
        person_detector_weights: str = "",
        save_to_disk: Optional[bool] = None,
        classes: Optional[dict] = None,
        file_classes: Optional[dict] = None,
        file_classes_source: str = "",
        class_map: str = "by_id",
        allow_new_classes: bool = False,
        **checkpointables: Any,
    ):
        if source not in SOURCES:
            raise ValueError(f"unknown checkpoint source {source!r}; expected one of {SOURCES}")
        if class_map not in CLASS_MAPS:
            raise ValueError(f"MODEL.WEIGHTS_CLASS_MAP must be one of {CLASS_MAPS}, got {class_map!r}")
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.strict = strict
        self.new_modules = dict(new_modules or {})
        self.require_weights = require_weights
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self.source = source
        self.person_detector_weights = person_detector_weights
        self.classes = classes
        self.file_classes = file_classes
        self.file_classes_source = file_classes_source or "MODEL.WEIGHTS_LABEL_MAP"
        self.class_map = class_map
        self.allow_new_classes = allow_new_classes
        self._loading = ""

    @classmethod
    def from_config(
        cls, model: nn.Module, cfg, save_dir: str = "", *, purpose: str = "eval", **checkpointables
    ) -> "ACARCheckpointer":
        """
        The checkpointer of ``cfg``'s rules (``MODEL.WEIGHTS_STRICT``, ``MODEL.ALLOW_UNSAFE_PICKLE``).

        Args:
            purpose: "eval" (evaluation, prediction, demo): every model tensor must come from
                the file (``MODEL.WEIGHTS`` must be set), except the ``person_detector.*`` ones
                when ``MODEL.PERSON_DETECTOR.WEIGHTS`` is set: that file is loaded into the
                detector first (see the class docstring). "train": also accepts
                a file without any ``roi_heads.*`` (backbone-only pre-train: the head is new) or
                without any ``person_detector.*`` keys (detector seeded by its own weights or
                trained from scratch); ``MODEL.WEIGHTS`` "" trains from scratch. "train" with
                ``MODEL.WEIGHTS_CLASS_MAP`` "by_name" also accepts classes the file lacks (new
                classifier rows).

        The model's classes are the metadata of ``DATASETS.TRAIN[0]`` ("train") or
        ``DATASETS.TEST[0]`` ("eval"); a file without its own class list has the classes of
        ``MODEL.WEIGHTS_LABEL_MAP``, else (a ``DATASETS.CLASSES`` subset) the dataset's full ones.
        """
        if purpose not in ("eval", "train"):
            raise ValueError(f"purpose must be 'eval' or 'train', got {purpose!r}")
        strict = bool(cfg.MODEL.get("WEIGHTS_STRICT", True))
        # Detector weights seed the detector whatever its NAME (not person_detector_config).
        pd = cfg.MODEL.get("PERSON_DETECTOR", None)
        seeded = bool(pd is not None and pd.get("WEIGHTS", ""))
        new = {}
        if seeded:
            new["person_detector"] = f"keeps MODEL.PERSON_DETECTOR.WEIGHTS {pd.WEIGHTS}"
        if purpose == "train":
            new["roi_heads"] = "new, initialized randomly (backbone-only pre-train)"
            new.setdefault("person_detector", "new, initialized randomly (trained jointly)")
        classes, file_classes, file_source = config_class_tables(cfg, purpose)
        return cls(
            model, save_dir, strict=strict, new_modules=new,
            require_weights=strict and purpose == "eval",
            allow_unsafe_pickle=bool(cfg.MODEL.get("ALLOW_UNSAFE_PICKLE", False)),
            person_detector_weights=pd.WEIGHTS if seeded else "",
            classes=classes, file_classes=file_classes, file_classes_source=file_source,
            class_map=cfg.MODEL.get("WEIGHTS_CLASS_MAP", "by_id"),
            allow_new_classes=purpose == "train",
            **checkpointables,
        )

    def save(self, name: str, **kwargs: Any) -> None:
        """detectron2's ``save``, with the model's class table as ``"classes"`` (when known)."""
        if self.classes is not None:
            kwargs.setdefault("classes", {"ids": list(self.classes["ids"]),
                                          "names": list(self.classes["names"])})
        super().save(name, **kwargs)

    def load(self, path: str, *args, **kwargs) -> Dict[str, Any]:
        if not path and self.require_weights:
            raise ValueError(
                "MODEL.WEIGHTS is empty: evaluating / predicting would use randomly initialized "
                "weights and give meaningless scores; set MODEL.WEIGHTS to a checkpoint (or "
                "MODEL.WEIGHTS_STRICT False to run a random model on purpose)"
            )
        if not path:  # detectron2 then loads nothing; the detector still gets its own weights
            self._seed_person_detector(file_keys=())
        self._loading = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading = ""

    def _seed_person_detector(self, file_keys) -> None:
        """Load ``person_detector_weights`` into the detector unless ``file_keys`` (the keys of
        the file loaded next) hold every ``person_detector.*`` tensor of the model."""
        detector = getattr(self.model, "person_detector", None)
        if not self.person_detector_weights or detector is None:
            return
        own = {f"person_detector.{k}" for k in detector.state_dict()}
        if own <= set(file_keys):
            return
        load_person_detector_weights(detector, self.person_detector_weights)

    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        """
        detectron2's ``resume_or_load``; a ``last_checkpoint`` naming an unreadable file raises
        ``ResumeCheckpointError`` listing the other checkpoints of ``save_dir`` and how to resume
        from one of them.
        """
        if not (resume and self.has_checkpoint()):
            return self.load(path, checkpointables=[])
        last = self.get_checkpoint_file()
        try:
            return self.load(last)
        except UnsafePickleError:
            raise
        except (ValueError, FileNotFoundError, AssertionError, EOFError) as e:
            raise ResumeCheckpointError(self._resume_help(last, e)) from e

    def _resume_help(self, bad: str, error: Exception) -> str:
        folder = self.save_dir
        others = [p for p in glob.glob(os.path.join(folder, "model_*.pth"))
                  if os.path.abspath(p) != os.path.abspath(bad)]
        others.sort(key=os.path.getmtime, reverse=True)
        msg = (f"cannot resume: {bad} (named by {os.path.join(folder, 'last_checkpoint')}) is "
               f"unreadable: {error}. ")
        if not others:
            return msg + (f"No other checkpoint in {folder}; start over with --overwrite "
                          "(SOLVER.OVERWRITE_OUTPUT_DIR True) or another OUTPUT_DIR.")
        names = ", ".join(os.path.basename(p) for p in others)
        example = os.path.basename(others[0])
        return msg + (
            f"Other checkpoints in {folder} (newest first): {names}. To resume from one, write "
            f"its name into last_checkpoint, e.g. `echo {example} > "
            f"{os.path.join(folder, 'last_checkpoint')}`, and run again with --resume."
        )

    def _model_fusion_only_conv(self) -> Optional[bool]:
        """True/False when the model has SlowFast laterals without/with BN, None otherwise."""
        keys = self.model.state_dict().keys()
        has_conv = any(re.search(r"(^|\.)fuse\.\w+\.conv\.weight$", k) for k in keys)
        has_bn = any(re.search(r"(^|\.)fuse\.\w+\.bn\.", k) for k in keys)
        return None if not has_conv else not has_bn

    def _load_file(self, filename: str) -> Dict[str, Any]:
        obj = load_checkpoint_object(filename, allow_unsafe_pickle=self.allow_unsafe_pickle)
        source = self.source if self.source != "auto" else detect_source(obj, filename)
        if source == "detectron2" and isinstance(obj, dict) and "model" in obj:
            # our own / detectron2 files: keep optimizer, scheduler, iteration for resuming
            return obj
        # A PySlowFast AVA head (PySlowFastROIHeads) takes the file's classifier as its projection.
        keep = "roi_heads.projection.weight" in self.model.state_dict()
        result = convert_checkpoint_with_report(
            obj, source, fusion_only_conv=self._model_fusion_only_conv(), where=filename,
            keep_classifier=keep,
        )
        if source != "detectron2":
            self.logger.info(
                f"Converted {len(result.state)} tensors from {source} checkpoint {filename}; "
                f"dropped {len(result.dropped)} documented keys"
            )
        return {"model": result.state, "__author__": f"acar_d2 ({source})"}

    def _load_model(self, checkpoint: Dict[str, Any]):
        self._seed_person_detector(file_keys=checkpoint["model"].keys())
        self._expand_trailing_dims(checkpoint["model"])
        try:
            self._match_class_rows(checkpoint)
        except ClassRowError as e:
            if self.strict:
                raise
            logger.warning(f"{e} (MODEL.WEIGHTS_STRICT False: the class rows load as they are)")
        file_modules = {k.split(".", 1)[0] for k in checkpoint["model"]}
        incompatible = super()._load_model(checkpoint)
        # nn.BatchNorm3d step counters are never converted (see convert.py); not worth a warning
        for k in [k for k in incompatible.missing_keys if k.endswith("num_batches_tracked")]:
            incompatible.missing_keys.remove(k)
        if self.strict:
            new = self._new_module_keys(incompatible, file_modules)
            self._raise_if_incompatible(incompatible, ignore={k for ks in new.values() for k in ks})
            for prefix, keys in new.items():
                logger.info(f"{prefix}: not in {self._loading or 'the checkpoint'}, "
                            f"{self.new_modules[prefix]} ({len(keys)} tensors)")
                for k in keys:  # said in that one line; no per-key warning from detectron2
                    incompatible.missing_keys.remove(k)
        return incompatible

    def _match_class_rows(self, checkpoint: Dict[str, Any]) -> None:
        """Rewrite the file's classifier rows to the model's classes (class docstring)."""
        heads = getattr(self.model, "roi_heads", None)
        file_classes, source = checkpoint.get("classes"), "its own class list"
        if not file_classes:
            file_classes, source = self.file_classes, self.file_classes_source
        if self.classes is None or heads is None or not file_classes:
            return
        where = f"{self._loading or 'the checkpoint'} (classes: {source})"
        rows = match_class_rows(self.classes, file_classes, self.class_map, where)
        if rows == list(range(len(file_classes["ids"]))):
            return  # the same classes in the same order
        keys = [f"roi_heads.{k}" for k in getattr(heads, "class_row_tensors", ())]
        if not keys:
            raise ClassRowError(
                f"{where}: the model's classes are not the file's but its head "
                f"({type(heads).__name__}) names no class rows to select (PySlowFast heads: set "
                "MODEL.ACTION_HEAD.PROJECTION_INDICES to the kept rows)")
        new = [n for n, r in zip(self.classes["names"], rows) if r is None]
        if new and not self.allow_new_classes:
            raise ClassRowError(
                f"{where} lacks the classes {new}: their classifier rows would be random; "
                "fine-tune them first (training with MODEL.WEIGHTS_CLASS_MAP by_name)")
        select_class_rows(checkpoint["model"], self.model.state_dict(), keys, rows,
                          len(file_classes["ids"]), where)
        kept = len(rows) - len(new)
        logger.info(f"Class rows of {', '.join(keys)}: {kept} of the {len(file_classes['ids'])} "
                    f"classes of {where} selected {self.class_map.replace('_', ' ')}"
                    + (f"; {len(new)} new class(es) {new} keep the head's initial rows (as built: "
                       "nn.Linear's default init, uniform in +-1/sqrt(in_features))" if new else ""))

    def _new_module_keys(self, incompatible, file_modules) -> Dict[str, list]:
        """Missing keys of the ``new_modules`` the file holds nothing of, per module."""
        shape_keys = {k for k, _, _ in incompatible.incorrect_shapes}
        out = {}
        for prefix in self.new_modules:
            if prefix in file_modules:
                continue  # partly present: every missing key is an error
            keys = [k for k in incompatible.missing_keys
                    if k.startswith(prefix + ".") and k not in shape_keys]
            if keys:
                out[prefix] = keys
        return out

    def _expand_trailing_dims(self, state: Dict[str, Any]) -> None:
        # Caffe2 blobs may have fewer dims than the model tensor; they get trailing 1-dims
        # (PySlowFast's c2 loader does the same, docs/CHECKPOINTS.md section 3).
        model_state = self.model.state_dict()
        for k, v in state.items():
            if k in model_state and isinstance(v, torch.Tensor):
                target = model_state[k].shape
                if v.dim() < len(target) and tuple(target[: v.dim()]) == tuple(v.shape):
                    if all(s == 1 for s in target[v.dim() :]):
                        state[k] = v.reshape(target)

    def _raise_if_incompatible(self, incompatible, ignore=frozenset()) -> None:
        problems = []
        if incompatible.incorrect_shapes:
            problems.append(
                "shape mismatch (key, file, model): "
                + "; ".join(f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in incompatible.incorrect_shapes)
            )
        shape_keys = {k for k, _, _ in incompatible.incorrect_shapes}
        missing = [k for k in incompatible.missing_keys if k not in shape_keys and k not in ignore]
        if missing:
            problems.append(f"{len(missing)} model key(s) missing from the file: {missing[:20]}")
        if incompatible.unexpected_keys:
            problems.append(
                f"{len(incompatible.unexpected_keys)} file key(s) not in the model: "
                f"{incompatible.unexpected_keys[:20]}"
            )
        if problems:
            raise CheckpointMismatchError(
                f"strict load of {self._loading or 'checkpoint'} failed: " + " | ".join(problems)
                + f". These weights do not fit the model built from the config; {STRICT_HINT}."
            )
