"""
The person detector's own detectron2 config: which config node says a model has a detector, where
its yaml is, and reading it (``MODEL.PERSON_DETECTOR.CONFIG_FILE``).
"""
import logging
from pathlib import Path

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

__all__ = ["person_detector_config", "resolve_detector_config_file", "load_detector_config"]

logger = logging.getLogger(__name__)
_REPO = Path(__file__).resolve().parents[2]


def person_detector_config(cfg: CN):
    """
    ``cfg.MODEL.PERSON_DETECTOR`` when the config has a person detector (``NAME`` set), else None
    (no such node, as in a plain detectron2 config, or ``NAME`` ""): the one test of "has a
    detector" of the model, mapper and trainer.
    """
    pd = cfg.MODEL.get("PERSON_DETECTOR", None)
    return pd if pd is not None and pd.NAME else None


def resolve_detector_config_file(name: str) -> str:
    """
    A detector config path: ``name`` if it is a file (absolute or relative to the working folder),
    else relative to the acar_d2 repository (``configs/...`` also inside an installed package,
    :func:`config_root`), else a detectron2 model-zoo name
    (``detectron2.model_zoo.get_config_file``, the configs shipped inside detectron2).

    Raises:
        FileNotFoundError: none of these exists (the message names ``name``).
    """
    if not name:
        raise ValueError("MODEL.PERSON_DETECTOR.CONFIG_FILE is empty: set a detectron2 detector "
                         "config (yaml path or model-zoo name such as "
                         "'COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml')")
    candidates = [Path(name).expanduser()]
    if Path(name).parts[:1] == ("configs",):
        candidates.append(_config_root().joinpath(*Path(name).parts[1:]))
    candidates.append(_REPO / name)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    try:
        from detectron2 import model_zoo

        return model_zoo.get_config_file(name)
    except RuntimeError:
        pass
    raise FileNotFoundError(
        f"MODEL.PERSON_DETECTOR.CONFIG_FILE '{name}': no such file (looked in the working folder "
        f"and in {_REPO}, {_config_root()}) and not a detectron2 model-zoo config name"
    )


def load_detector_config(name: str, device: str = "cpu") -> CN:
    """
    The detector's own detectron2 config (``get_cfg()`` + the file), on ``device``.

    Raises:
        FileNotFoundError: missing file; ValueError: the file is not a detectron2 detector config
        (unknown keys, e.g. an acar_d2 config, or a meta-architecture other than GeneralizedRCNN).
    """
    path = resolve_detector_config_file(name)
    det_cfg = get_cfg()
    try:
        det_cfg.merge_from_file(path)
    except Exception as e:  # yacs: KeyError "Non-existent config key", yaml errors, ...
        raise ValueError(
            f"MODEL.PERSON_DETECTOR.CONFIG_FILE '{path}' is not a detectron2 detector config: "
            f"{type(e).__name__}: {e}"
        ) from e
    if det_cfg.MODEL.META_ARCHITECTURE != "GeneralizedRCNN":
        raise ValueError(
            f"MODEL.PERSON_DETECTOR.CONFIG_FILE '{path}': META_ARCHITECTURE is "
            f"'{det_cfg.MODEL.META_ARCHITECTURE}', the person detector needs a 'GeneralizedRCNN' "
            "(Faster R-CNN) config"
        )
    if det_cfg.MODEL.MASK_ON or det_cfg.MODEL.KEYPOINT_ON:
        logger.info("person detector config %s: mask/keypoint heads switched off", path)
        det_cfg.MODEL.MASK_ON = False
        det_cfg.MODEL.KEYPOINT_ON = False
    det_cfg.MODEL.WEIGHTS = ""  # weights come from MODEL.PERSON_DETECTOR.WEIGHTS
    det_cfg.MODEL.DEVICE = device
    return det_cfg


def _config_root() -> Path:
    from . import config_root

    return config_root()
