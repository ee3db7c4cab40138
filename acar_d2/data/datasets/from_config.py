"""
Your own AVA-format splits named in the config (``DATASETS.CUSTOM``), so that
``tools/train_net.py --config-file my.yaml`` is enough, no Python::

    DATASETS:
      CUSTOM:
        - NAME: "bikes_train"
          ANNOTATIONS: "datasets/bikes/annotations/train.csv"
          LABEL_MAP: "datasets/bikes/annotations/label_map.pbtxt"
          VIDEOS: "datasets/bikes/videos"          # and / or FRAMES: "datasets/bikes/frames"
          FPS: 25
          PROPOSALS: "datasets/bikes/annotations/train_boxes.csv"
      TRAIN: ("bikes_train",)

Each entry holds the arguments of :func:`~acar_d2.data.datasets.register_ava_format_dataset`
in capitals. :func:`register_config_datasets` (called by ``acar_d2.engine.setup_cfg``) registers
them; :func:`validate_config_datasets` (called by ``tools/train_net.py`` before training or
evaluating) runs the checks of ``tools/validate_dataset.py`` on those the run uses.
"""
import logging
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog

from .custom import register_ava_format_dataset

__all__ = ["CUSTOM_KEYS", "custom_dataset_specs", "register_config_datasets",
           "validate_config_datasets"]

logger = logging.getLogger(__name__)

# entry key -> register_ava_format_dataset argument
CUSTOM_KEYS = {
    "NAME": "name", "ANNOTATIONS": "annotations", "LABEL_MAP": "label_map", "FRAMES": "frames",
    "VIDEOS": "videos", "FRAME_LIST": "frame_list", "EXCLUSIONS": "exclusions",
    "PROPOSALS": "proposals", "FPS": "fps", "FIRST_SECOND": "first_second",
}
# what this module registered: name -> arguments (a config loaded again registers nothing new)
_REGISTERED: Dict[str, dict] = {}


def _spec(entry, i: int) -> dict:
    """The register_ava_format_dataset arguments of entry ``i``; errors name the entry and key."""
    where = f"DATASETS.CUSTOM[{i}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping {{NAME: ..., LABEL_MAP: ..., ...}}, got "
                         f"{entry!r}")
    unknown = [k for k in entry if k not in CUSTOM_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; the keys are {list(CUSTOM_KEYS)}")
    spec = {CUSTOM_KEYS[k]: v for k, v in entry.items() if v not in (None, "")}
    for key in ("NAME", "LABEL_MAP"):
        if CUSTOM_KEYS[key] not in spec:
            raise ValueError(f"{where}: {key} is missing")
    where = f"{where} ({spec['name']})"
    if "frames" not in spec and "videos" not in spec:
        raise ValueError(f"{where}: give FRAMES (folder of <video_id>/ frame folders) and / or "
                         "VIDEOS (folder of <video_id>.mp4)")
    try:
        spec["fps"] = float(spec.get("fps", 30.0))
        spec["first_second"] = int(spec.get("first_second", 0))
    except (TypeError, ValueError):
        raise ValueError(f"{where}: FPS must be a number and FIRST_SECOND an integer, got "
                         f"{entry.get('FPS')!r} / {entry.get('FIRST_SECOND')!r}") from None
    if spec["fps"] <= 0:
        raise ValueError(f"{where}: FPS must be > 0, got {spec['fps']:g}")
    spec.setdefault("annotations", None)
    return spec


def custom_dataset_specs(cfg) -> List[dict]:
    """The ``register_ava_format_dataset`` arguments of every ``DATASETS.CUSTOM`` entry."""
    specs = [_spec(e, i) for i, e in enumerate(cfg.DATASETS.get("CUSTOM", []))]
    names = [s["name"] for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"DATASETS.CUSTOM names {twice} more than once")
    return specs


def register_config_datasets(cfg) -> List[str]:
    """
    Register every split of ``DATASETS.CUSTOM`` (see the module docstring); a split this function
    registered before with other files is registered again, one registered otherwise (a builtin
    split, one registered in Python) is an error naming the entry.

    Returns:
        list[str]: the names of the entries.
    """
    specs = custom_dataset_specs(cfg)
    for i, spec in enumerate(specs):
        name = spec["name"]
        if _REGISTERED.get(name) == spec:
            continue
        if name in DatasetCatalog.list():
            if name not in _REGISTERED:
                raise ValueError(f"DATASETS.CUSTOM[{i}]: {name!r} is already a registered dataset "
                                 "(builtin or registered in Python); give the split another NAME")
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_ava_format_dataset(**spec)
        _REGISTERED[name] = spec
        logger.info(f"registered {name} from DATASETS.CUSTOM[{i}]")
    return [s["name"] for s in specs]


def validate_config_datasets(cfg, max_errors: int = 5) -> Dict[str, object]:
    """
    Run the dataset checks (:func:`acar_d2.data.validate.validate_ava_dataset`, those of
    ``tools/validate_dataset.py``) on the ``DATASETS.CUSTOM`` splits that ``DATASETS.TRAIN`` /
    ``TEST`` use. Warnings are logged.

    Returns:
        dict[str, ValidationReport]: per split checked.
    Raises:
        ValueError: a split with error-level problems, its first ``max_errors`` as
            ``file:line: error [check] message``; a test split without ``PROPOSALS`` for a
            model without a person detector (nothing would be scored).
    """
    from ..validate import files_of_dataset, validate_ava_dataset

    used = set(cfg.DATASETS.TRAIN) | set(cfg.DATASETS.TEST)
    clip = cfg.INPUT.CLIP
    reports = {}
    for i, spec in enumerate(custom_dataset_specs(cfg)):
        name = spec["name"]
        if name not in used:
            continue
        no_boxes = "proposals" not in spec and not cfg.MODEL.PERSON_DETECTOR.NAME
        if name in cfg.DATASETS.TEST and no_boxes:
            # evaluation would score no box at all: every AP 0, a silent wrong answer
            raise ValueError(
                f"DATASETS.CUSTOM[{i}] ({name}) is evaluated (DATASETS.TEST) but has no PROPOSALS "
                "and the model has no person detector (MODEL.PERSON_DETECTOR.NAME): no person box to "
                "label; give PROPOSALS (a person-box file, docs/CUSTOM_DATA.md) or use a config "
                "with a person detector"
            )
        files = files_of_dataset(name)
        rate = files["fps"] / clip.FPS if clip.FPS > 0 else 1.0
        files["half_span"] = int(round(clip.NUM_FRAMES * clip.SAMPLING_RATE / 2 * rate))
        report = validate_ava_dataset(**files)
        reports[name] = report
        for p in report.problems:
            if p.level != "error":
                logger.warning(f"{name}: {p}")
        if report.errors:
            shown = "; ".join(str(p) for p in report.errors[:max_errors])
            more = len(report.errors) - max_errors
            raise ValueError(
                f"DATASETS.CUSTOM split {name} fails validation: {shown}"
                + (f"; ... {more} more" if more > 0 else "")
                + f" (all: python tools/validate_dataset.py --config-file CONFIG --dataset {name})"
            )
        logger.info(f"{name}: validated, {report.stats.get('rows', 0)} rows, "
                    f"{report.stats.get('key_frames', 0)} key frames, "
                    f"{len(report.problems)} warning(s)")
    return reports
