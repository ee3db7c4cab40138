"""
The acar_d2 model zoo table: published action-detection weights and the config that builds each
model (docs/MODEL_ZOO.md is the human-readable version of this table).

Four kinds of weight files:

* official ACAR-Net models: Google-Drive files of the ACAR-Net model zoo (github.com/Siyu-C/ACAR-Net,
  ``model_zoo/README.md``); no stable download URL, so they are downloaded by hand into the zoo
  folder (``acar_d2.model_zoo.zoo_dir()``) and recognised there;
* PySlowFast's AVA models: stable https URLs of PySlowFast's ``MODEL_ZOO.md`` ("AVA" table),
  downloaded once into detectron2's cache (iopath);
* VideoMAE's AVA models (MCG-NJU/VideoMAE-Action-Detection ``MODEL_ZOO.md``): Google-Drive files,
  downloaded by hand like ACAR-Net's (``videomae/<entry name>.pth`` in the zoo folder);
* detectron2's COCO Faster R-CNN R50-FPN 3x, the person detector of the demo configs
  (``detectron2://`` URL; detectron2's file names carry the file's md5 prefix), read from the one
  config that names it, ``configs/Demo/Base-COCO-Person-Detector.yaml``.

One name per entry: the zoo name; its action config is in the table, and its demo config is
derived from that (``Demo/<action config name>_coco_faster_rcnn.yaml``: the action config +
``Demo/Base-COCO-Person-Detector.yaml``).
"""
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Dict

import yaml

from ..config import config_root

__all__ = ["WeightFile", "ZooEntry", "ZOO_ENTRIES", "COCO_PERSON_DETECTOR", "DETECTOR_BASE_CONFIG",
           "ZOO_URL_PREFIX", "zoo_weight_files"]

# The scheme of zoo weight files in configs (``MODEL.WEIGHTS acar_d2://acar/<file>``): resolved when
# the weights are loaded (``path_handler.py``), as detectron2's ``detectron2://`` URLs.
ZOO_URL_PREFIX = "acar_d2://"

ACAR_DRIVE = "https://drive.google.com/drive/folders/1lTej6EaBjl7bSAeIvcXyOD0qvXXmrST3"
PYSLOWFAST_AVA = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/ava/"


@dataclass(frozen=True)
class WeightFile:
    """
    One weight file of the zoo.

    Attributes:
        filename: its path inside the zoo folder (``zoo_dir()``), where it is looked for first.
        url: ``https://`` or ``detectron2://`` URL fetched through detectron2's ``PathManager``;
            "" = no stable URL, the file is downloaded by hand from ``manual_from``.
        manual_from: the page a person downloads it from (files without ``url``).
        md5_prefix: leading hex digits of the file's md5 ("" = not known, not checked).
    """

    filename: str
    url: str = ""
    manual_from: str = ""
    md5_prefix: str = ""

    @property
    def zoo_url(self) -> str:
        """``acar_d2://<filename>``: what ``get_config(trained=True)`` writes into the config."""
        return ZOO_URL_PREFIX + self.filename


DETECTOR_BASE_CONFIG = "Demo/Base-COCO-Person-Detector.yaml"


def _detector_weights(base_config: str) -> WeightFile:
    """The person detector's weight file as the demo configs' base names it: a ``detectron2://``
    URL whose file name ends with the file's md5 prefix (``model_final_<md5 prefix>.pkl``)."""
    with open(config_root() / base_config) as f:
        url = yaml.safe_load(f)["MODEL"]["PERSON_DETECTOR"]["WEIGHTS"]
    scheme = "detectron2://"
    if not url.startswith(scheme):
        raise ValueError(f"{base_config}: MODEL.PERSON_DETECTOR.WEIGHTS {url!r} is not a {scheme} URL")
    path = url[len(scheme):]
    return WeightFile(filename=f"detectron2/{path}", url=url,
                      md5_prefix=PurePosixPath(path).stem.rsplit("_", 1)[-1])


COCO_PERSON_DETECTOR = _detector_weights(DETECTOR_BASE_CONFIG)


@dataclass(frozen=True)
class ZooEntry:
    """
    One model: its config, its weights and the published number.

    Attributes:
        name: the zoo name (``model_zoo.get(name)``, ``tools/demo.py --model name``).
        config: action config, relative to ``configs/`` (evaluation with dataset proposals).
        weights: the action model's weights.
        backbone, head, dataset: what the table shows.
        published_map: the authors' frame-mAP@0.5 and what it was measured on.
        detector: the person detector of the demo config (:data:`COCO_PERSON_DETECTOR`).
    """

    name: str
    config: str
    weights: WeightFile
    backbone: str
    head: str
    dataset: str
    published_map: str
    detector: WeightFile = COCO_PERSON_DETECTOR

    @property
    def demo_config(self) -> str:
        """That model + the COCO person detector, relative to ``configs/``."""
        return f"Demo/{PurePosixPath(self.config).stem}_coco_faster_rcnn.yaml"


def _acar(file_name: str) -> WeightFile:
    return WeightFile(filename=f"acar/{file_name}", manual_from=ACAR_DRIVE)


def _pyslowfast(file_name: str) -> WeightFile:
    return WeightFile(filename=f"pyslowfast/ava/{file_name}", url=PYSLOWFAST_AVA + file_name)


_ENTRIES = [
    ZooEntry(
        name="ava_acar_r50",
        config="AVA/SLOWFAST_R50_ACAR_HR2O.yaml",
        weights=_acar("AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar"),
        backbone="SlowFast R50 8x8 (K400)", head="ACAR, HR2O-NL depth 2", dataset="AVA v2.2",
        published_map="27.83 (re-eval 27.74), AVA v2.2 val",
    ),
    ZooEntry(
        name="ava_acar_r101",
        config="AVA/SLOWFAST_R101_ACAR_HR2O_DEPTH1.yaml",
        weights=_acar("AVA_SLOWFAST_R101_ACAR_HR2O_DEPTH1.pth.tar"),
        backbone="SlowFast R101 8x8 (K700)", head="ACAR, HR2O-NL depth 1", dataset="AVA v2.2",
        published_map="31.69 (re-eval 31.72), AVA v2.2 val",
    ),
    ZooEntry(
        name="ava_kinetics_acar_r101",
        config="AVA-Kinetics/acar_hr2o_depth1_SLOWFAST_R101_ava_kinetics_evalAVA.yaml",
        weights=_acar("AVA-Kinetics_SLOWFAST_R101_ACAR_HR2O_DEPTH1.pth.tar"),
        backbone="SlowFast R101 8x8 (K700)", head="ACAR, HR2O-NL depth 1", dataset="AVA-Kinetics",
        published_map="33.74 (re-eval 33.70), AVA v2.2 val",
    ),
    ZooEntry(
        name="ava_pyslowfast_r101_32x2",
        config="AVA/pyslowfast_SLOWFAST_R101_NL_32x2_ava_v2.2.yaml",
        weights=_pyslowfast("SLOWFAST_32x2_R101_50_50.pkl"),
        backbone="SlowFast R101+NL 32x2 (K600)", head="PySlowFast linear", dataset="AVA v2.2",
        published_map="29.1, AVA v2.2 val",
    ),
    ZooEntry(
        name="ava_pyslowfast_r101_64x2",
        config="AVA/pyslowfast_SLOWFAST_R101_NL_64x2_ava_v2.2.yaml",
        weights=_pyslowfast("SLOWFAST_64x2_R101_50_50.pkl"),
        backbone="SlowFast R101+NL 64x2 (K600)", head="PySlowFast linear", dataset="AVA v2.2",
        published_map="29.4, AVA v2.2 val",
    ),
    ZooEntry(
        name="ava_pyslowfast_r101_32x2_v2.1",
        config="AVA/pyslowfast_SLOWFAST_R101_NL_32x2_ava_v2.1.yaml",
        weights=_pyslowfast("SLOWFAST_32x2_R101_50_50_v2.1.pkl"),
        backbone="SlowFast R101+NL 32x2 (K600)", head="PySlowFast linear", dataset="AVA v2.1",
        published_map="28.2, AVA v2.1 val",
    ),
]

VIDEOMAE_ZOO = "https://github.com/MCG-NJU/VideoMAE-Action-Detection/blob/main/MODEL_ZOO.md"
# Their MODEL_ZOO.md: (ViT size, with K400 labels) -> (AVA checkpoint's Drive file or, where the
# table links none, the table itself; published AVA v2.2 mAP).
_VIDEOMAE_FILES = {
    ("S", False): ("https://drive.google.com/file/d/1gFJ8NnPPinpDO_caBg4CXR6fTDPOCVw_", "22.5"),
    ("S", True): ("https://drive.google.com/file/d/1b9Lp64IF8vjhh19mjDdyoSSiZk6cFfKb", "28.4"),
    ("B", False): ("https://drive.google.com/file/d/19OG6aW-JKYtcgNiBLE4VXD6oAKAfklCB", "26.7"),
    ("B", True): ("https://drive.google.com/file/d/1-YgaSSM9xWc4V_HjVG-FH0LMA6KV-Qdh", "31.8"),
    ("L", False): (VIDEOMAE_ZOO, "34.3"),
    ("L", True): (VIDEOMAE_ZOO, "37.0"),
    ("H", False): (VIDEOMAE_ZOO, "36.5"),
    ("H", True): (VIDEOMAE_ZOO, "39.5"),
}


def _videomae(size: str, k400_labels: bool) -> ZooEntry:
    tag = "k400_mae_ft" if k400_labels else "k400_mae"
    name = f"ava_videomae_vit_{size.lower()}_{tag}"
    leaf = f"videomae_VIT_{size}_{tag}_16x4_ava_v2.2"
    source, published = _VIDEOMAE_FILES[(size, k400_labels)]
    return ZooEntry(
        name=name,
        config=f"VideoMAE/{leaf}.yaml",
        weights=WeightFile(filename=f"videomae/{name}.pth", manual_from=source),
        backbone=f"VideoMAE ViT-{size} 16x4 (K400 MAE{' + K400 labels' if k400_labels else ''})",
        head="VideoMAE linear", dataset="AVA v2.2",
        published_map=f"{published}, AVA v2.2 val",
    )


_ENTRIES += [_videomae(size, labels) for size in "SBLH" for labels in (False, True)]

ZOO_ENTRIES: Dict[str, ZooEntry] = {e.name: e for e in _ENTRIES}


def zoo_weight_files() -> Dict[str, WeightFile]:
    """Every weight file of the table (action models and person detectors), by ``filename``."""
    files = {}
    for entry in _ENTRIES:
        for weights in (entry.weights, entry.detector):
            if weights is not None:
                files[weights.filename] = weights
    return files
