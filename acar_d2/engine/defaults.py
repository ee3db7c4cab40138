"""
Entry-point helpers in the style of ``detectron2.engine.defaults``: ``setup_cfg`` builds the config
every tool and test uses, ``ActionPredictor`` is the clip counterpart of ``DefaultPredictor``.
"""
import logging
import os
from typing import Optional, Sequence

import torch
import yaml
from detectron2.config import CfgNode, get_cfg
from fvcore.common.config import BASE_KEY
from detectron2.modeling import build_model
from detectron2.structures import Instances

from ..checkpoint import ACARCheckpointer
from ..config import add_acar_config, resolve_bank_kind
from ..data.build import build_clip_mapper
from ..data.class_subset import apply_class_subset
from ..data.dataset_keys import resolve_dataset_keys
from ..data.datasets.from_config import register_config_datasets
from ..data.layouts import apply_dataset_config
from ..modeling.inference import check_precision, inference_options, prepare_for_inference

__all__ = ["setup_cfg", "ActionPredictor"]

logger = logging.getLogger(__name__)


def setup_cfg(
    config_file: Optional[str] = None, opts: Optional[Sequence[str]] = None, *, freeze: bool = True
) -> CfgNode:
    """
    The acar_d2 config: detectron2's ``get_cfg()`` + ``add_acar_config``, then ``config_file``
    (``_BASE_`` chains resolved) and the ``KEY VALUE`` overrides of ``opts``.

    The splits of ``DATASETS.CUSTOM`` are registered, and the keys a dataset decides
    (``MODEL.ACTION_HEAD.NUM_CLASSES`` 0, ``POSE_CLASS_INDICES`` [], ``INPUT.CLIP.SOURCE`` "")
    take the training split's values (:mod:`acar_d2.data.dataset_keys`);
    ``MODEL.FEATURE_BANK.KIND`` "" takes the ROI head's bank kind (:mod:`acar_d2.config.bank_kind`).
    ``MODEL.DEVICE`` defaults to "cuda" where CUDA is available and "cpu" elsewhere; asking for
    "cuda" explicitly on a machine without it is an error (not a silent switch to the CPU).
    Pair it with detectron2's ``default_setup(cfg, args)`` in a training tool (output folder,
    logging, ``config.yaml`` beside the outputs).

    Args:
        config_file: a yaml file, or None for the defaults.
        opts: e.g. ``["MODEL.WEIGHTS", "model_final.pth", "SOLVER.MAX_ITER", "100"]``.
        freeze: return a frozen config.

    Raises:
        FileNotFoundError: no ``config_file``.
        ValueError: a yaml syntax error (file and line), an unknown key or a value of the wrong
            type (the file, or the override), a ``DATASETS.CUSTOM`` entry or a value that
            contradicts the training split (naming the key), a ``MODEL.FEATURE_BANK.KIND`` that
            is not the head's.
    """
    cfg = get_cfg()
    add_acar_config(cfg)
    if config_file:
        _merge_file(cfg, config_file)
    if opts:
        try:
            cfg.merge_from_list(list(opts))
        except (KeyError, ValueError, AssertionError) as e:  # unknown key, type, odd length
            raise ValueError(f"config overrides {' '.join(map(str, opts))}: {_message(e)}") from None
    # Splits named in the config (DATASETS.CUSTOM) are registered; per-split dataset files given
    # in the config (DATASETS.PROPOSAL_FILES_*, DATASETS.AVA_FILES) replace the registered ones for
    # the splits this config uses; the keys left to the dataset (NUM_CLASSES 0, POSE_CLASS_INDICES
    # [], INPUT.CLIP.SOURCE "") take the training split's values (data/dataset_keys.py).
    register_config_datasets(cfg)
    apply_dataset_config(cfg)
    # DATASETS.CLASSES: the splits become the class subset (metadata and labels), checked
    # against MODEL.ACTION_HEAD.NUM_CLASSES / POSE_CLASS_INDICES; the keys left to the dataset
    # are then resolved from the (subset's) metadata.
    apply_class_subset(cfg)
    resolve_dataset_keys(cfg)
    # MODEL.FEATURE_BANK.KIND "" takes the head's kind; another one than the head's is an error
    # (config/bank_kind.py).
    resolve_bank_kind(cfg)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"MODEL.DEVICE is '{cfg.MODEL.DEVICE}' but CUDA is not available on this machine; "
            "leave MODEL.DEVICE unset (it defaults to what is available) or set it to 'cpu'"
        )
    if freeze:
        cfg.freeze()
    return cfg


def _message(error: Exception) -> str:
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def _merge_file(cfg: CfgNode, config_file: str) -> None:
    """
    ``cfg.merge_from_file`` whose errors name the file (and the yaml line). ``_BASE_`` may also be a
    list of files (relative to this one), merged in order before the file's own keys: a demo
    config is ``_BASE_: ["../AVA/<action config>.yaml", "Base-COCO-Person-Detector.yaml"]``, so the
    detector block is written once (detectron2 reads one base per file).
    """
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file not found: {config_file}")
    try:
        with open(config_file) as f:
            own = yaml.safe_load(f) or {}
        bases = own.pop(BASE_KEY, None) if isinstance(own, dict) else None
        if not isinstance(bases, list):
            cfg.merge_from_file(config_file)
            return
        for base in bases:
            _merge_file(cfg, os.path.join(os.path.dirname(config_file), str(base)))
        if own.get("VERSION", cfg.VERSION) != cfg.VERSION:
            raise ValueError(f"VERSION {own['VERSION']} (this acar_d2 reads {cfg.VERSION})")
        cfg.merge_from_other_cfg(type(cfg)(own))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{getattr(mark, 'name', config_file)}:{mark.line + 1}" if mark else config_file
        raise ValueError(f"{where}: not a valid yaml config ({getattr(e, 'problem', None) or e})"
                         ) from None
    except (KeyError, ValueError, AssertionError) as e:  # unknown key, type, missing _BASE_
        raise ValueError(f"{config_file}: {_message(e)}") from None


class ActionPredictor:
    """
    Builds the model of ``cfg``, loads ``cfg.MODEL.WEIGHTS`` (any format ``ACARCheckpointer``
    reads: acar_d2 / detectron2 checkpoints, official ACAR-Net and PySlowFast files) and maps one
    key-frame dataset dict (docs/ARCHITECTURE.md) to ``Instances``, like detectron2's
    ``DefaultPredictor`` maps one image.

    ``self.model`` is the inference model: the plain ``build_model`` model with its weights, then
    the inference transforms of ``cfg.MODEL.INFERENCE`` (BN folded into the convolutions,
    channels-last 3D convolutions, the precision; :mod:`acar_d2.modeling.inference`), called with
    the same inputs. ``MODEL.INFERENCE.TRANSFORMS False`` (and ``PRECISION fp32``) keeps it plain.

    Example::

        predictor = ActionPredictor(setup_cfg("output/quickstart/config.yaml",
                                              ["MODEL.WEIGHTS", "output/quickstart/model_final.pth"]))
        instances = predictor(dataset_dict)

    Args:
        cfg (CfgNode): a full acar_d2 config.
    """

    def __init__(self, cfg: CfgNode):
        self.cfg = cfg.clone()
        options = inference_options(self.cfg)
        check_precision(options["precision"], options["device"])  # before the (slow) build
        self.model = build_model(self.cfg)
        self.model.eval()
        ACARCheckpointer.from_config(self.model, cfg, purpose="eval").load(cfg.MODEL.WEIGHTS)
        prepare_for_inference(self.model, **options)
        self._mapper = None

    @property
    def mapper(self):
        """The test mapper, built on first use: ``ClipDatasetMapper``, or for a feature-bank model
        ``FeatureBankDatasetMapper`` reading the windows from ``MODEL.FEATURE_BANK.DIR`` (the
        bank of the dataset the key frames come from; a new video: ``VideoActionPredictor``)."""
        if self._mapper is None:
            self._mapper = build_clip_mapper(self.cfg, is_train=False)
        return self._mapper

    @mapper.setter
    def mapper(self, value) -> None:
        self._mapper = value

    @torch.no_grad()
    def __call__(self, dataset_dict: dict) -> Instances:
        """
        Args:
            dataset_dict (dict): one key frame (with person ``proposals`` unless the model has a
                person detector).
        Returns:
            Instances: on the CPU, in key-frame pixels: ``pred_boxes``, ``scores``,
            ``action_scores`` (R, K), ``action_logits`` (R, K).
        """
        inputs = self.mapper(dataset_dict)
        return self.model([inputs])[0]["instances"].to("cpu")
