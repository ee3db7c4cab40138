"""
``acar_d2://<file>``: the zoo weight files as detectron2 ``PathManager`` URLs, like
``detectron2://``. ``model_zoo.get_config(trained=True)`` writes them into ``MODEL.WEIGHTS`` /
``MODEL.PERSON_DETECTOR.WEIGHTS`` without touching any file; the checkpointer resolves them when
it loads (``PathManager.get_local_path``): the zoo folder first, then the download with its md5
check, else the download instruction (:func:`~acar_d2.model_zoo.model_zoo.fetch_weights`).
"""
import os

from detectron2.utils.file_io import PathManager
from iopath.common.file_io import PathHandler

from .entries import ZOO_URL_PREFIX, WeightFile, zoo_weight_files
from .model_zoo import fetch_weights, zoo_dir

__all__ = ["ZooWeightsHandler"]


class ZooWeightsHandler(PathHandler):
    """Resolves ``acar_d2://<filename>`` (``WeightFile.filename`` of the zoo table) to a local file."""

    PREFIX = ZOO_URL_PREFIX

    def _get_supported_prefixes(self):
        return [self.PREFIX]

    def _get_local_path(self, path: str, **kwargs) -> str:
        name = path[len(self.PREFIX):]
        weights = zoo_weight_files().get(name)
        if weights is None:
            # not in the table: a file the user put into the zoo folder under that name
            weights = WeightFile(filename=name)
            if not os.path.isfile(os.path.join(zoo_dir(), name)):
                raise FileNotFoundError(
                    f"{path}: not a weight file of the acar_d2 model zoo (known: "
                    f"{', '.join(sorted(zoo_weight_files()))}) and not in the zoo folder {zoo_dir()}")
        return fetch_weights(weights)

    def _open(self, path: str, mode: str = "r", **kwargs):
        return PathManager.open(self._get_local_path(path), mode, **kwargs)


PathManager.register_handler(ZooWeightsHandler())
