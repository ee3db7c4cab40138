"""
The acar_d2 model zoo (docs/MODEL_ZOO.md): published ACAR-Net and PySlowFast AVA models, with the
config that builds each and the COCO person detector of their demo configs.

    from acar_d2 import model_zoo
    model = model_zoo.get("ava_acar_r50", trained=True)          # weights fetched / found
    cfg = model_zoo.get_config("ava_acar_r50", trained=True, demo=True)
    # MODEL.WEIGHTS "acar_d2://acar/AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar" (+ the person detector's):
    # resolved by the checkpointer at load time (path_handler.py)
"""
from .entries import COCO_PERSON_DETECTOR, ZOO_ENTRIES, ZOO_URL_PREFIX, WeightFile, ZooEntry
from .model_zoo import (DownloadError, WeightsNotFoundError, fetch_weights, get, get_config,
                        get_config_file, get_entry, list_models, zoo_dir)
from .path_handler import ZooWeightsHandler  # registers acar_d2:// with detectron2's PathManager

__all__ = ["COCO_PERSON_DETECTOR", "ZOO_ENTRIES", "ZOO_URL_PREFIX", "WeightFile", "ZooEntry",
           "ZooWeightsHandler", "DownloadError",
           "WeightsNotFoundError", "fetch_weights", "get", "get_config", "get_config_file",
           "get_entry", "list_models", "zoo_dir"]
