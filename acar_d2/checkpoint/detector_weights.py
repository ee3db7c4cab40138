"""
Loading ``MODEL.PERSON_DETECTOR.WEIGHTS`` (a detectron2 detector checkpoint) into a person
detector: ``ACARCheckpointer.from_config`` calls it before ``MODEL.WEIGHTS`` (the model is built
without reading any file, as detectron2's ``build_model``), a tool using the detector alone
(``tools/dump_proposals.py``) calls it directly.
"""
import logging
import os

from detectron2.checkpoint import DetectionCheckpointer
from torch import nn

from .safe_pickle import read_pickle_safely, unsafe_pickle_allowed

__all__ = ["load_person_detector_weights"]

logger = logging.getLogger(__name__)


class _PersonDetectorCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that strips ``person_detector.`` and turns silent partial loads
    (no matching key, shape mismatches) into errors naming the file."""

    def __init__(self, model, path: str):
        super().__init__(model)
        self._path = path

    def _load_file(self, filename):
        # detectron2 reads model-zoo / Caffe2 ``.pkl`` files with a plain ``pickle.load``, which
        # would run code from a crafted file: check first that it holds plain data only (the
        # project's allow-list; ACAR_ALLOW_UNSAFE_PICKLE=1 skips the check, see docs/SAFETY.md).
        # ``.pth`` files go through torch.load, whose default here is weights_only=True.
        if filename.endswith(".pkl"):
            read_pickle_safely(filename, "MODEL.PERSON_DETECTOR.WEIGHTS file",
                               allow_unsafe=unsafe_pickle_allowed())
        return super()._load_file(filename)

    def _load_model(self, checkpoint):
        state = checkpoint["model"]
        if any(k.startswith("person_detector.") for k in state):
            checkpoint["model"] = state = {
                k[len("person_detector."):]: v for k, v in state.items()
                if k.startswith("person_detector.")
            }
        own = self.model.state_dict()
        where = f"MODEL.PERSON_DETECTOR.WEIGHTS '{self._path}'"
        if not checkpoint.get("matching_heuristics", False) and not any(k in own for k in state):
            raise ValueError(
                f"{where}: none of its {len(state)} keys is a parameter of the detector built from "
                f"{getattr(self.model, 'config_file', '?')} (e.g. {sorted(state)[:3]}); not a "
                "detectron2 detector checkpoint of this architecture"
            )
        try:
            incompatible = super()._load_model(checkpoint)
        except Exception as e:  # the matching heuristics of model-zoo files raise on mismatch
            raise ValueError(f"{where} does not fit the detector: {e}") from e
        if incompatible.incorrect_shapes:
            shown = ", ".join(f"{k}: file {tuple(a)} vs model {tuple(b)}"
                              for k, a, b in incompatible.incorrect_shapes[:4])
            raise ValueError(
                f"{where} is a detector of another architecture: "
                f"{len(incompatible.incorrect_shapes)} shape mismatches ({shown})"
            )
        if len(incompatible.missing_keys) >= len(own):
            raise ValueError(f"{where}: no parameter of the detector was found in the file")
        return incompatible


def load_person_detector_weights(model: nn.Module, path: str) -> None:
    """
    Load a detectron2 detector checkpoint into ``model`` with ``DetectionCheckpointer``.

    Accepts plain detectron2 files (``backbone.*``, ``proposal_generator.*``, ``roi_heads.*``;
    ``.pth`` or model-zoo ``.pkl``, local or ``detectron2://``) and ACARNet checkpoints (only
    their ``person_detector.*`` keys are used).

    Raises:
        FileNotFoundError: the file does not exist; ValueError: shapes differ (another
        architecture / number of classes) or no key matches; the messages name the file.
    """
    if "://" not in path and not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL.PERSON_DETECTOR.WEIGHTS '{path}': no such file")
    _PersonDetectorCheckpointer(model, path).load(path, checkpointables=[])
    logger.info("person detector: weights loaded from %s", path)
