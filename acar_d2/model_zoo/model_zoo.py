"""
``get_config_file`` / ``get_config`` / ``get`` over the zoo table (``entries.py``), in the style
of ``detectron2.model_zoo``, and fetching the weight files. As in detectron2, a config names its
weights (``acar_d2://<file>``, ``path_handler.py``) and they are fetched when the model loads them.

Where weight files are looked for, in order:

1. the zoo folder :func:`zoo_dir` (``$ACAR_MODEL_ZOO``, default ``<detectron2 cache>/acar_d2``, i.e.
   ``~/.torch/iopath_cache/acar_d2`` unless ``$FVCORE_CACHE`` / ``$IOPATH_CACHE`` moves it), at the
   entry's ``filename``: hand-downloaded files go here, and a file put here is never downloaded;
2. files with a URL: detectron2's ``PathManager`` downloads them once into its cache (progress in
   the log) and the md5 prefix is checked where known;
3. otherwise (official ACAR-Net Drive files) :class:`WeightsNotFoundError` says which file to
   download from where and where to put it.
"""
import hashlib
import logging
import os
from typing import List, Optional, Sequence

from detectron2.config import CfgNode
from detectron2.utils.file_io import PathManager

from ..config import config_root
from .entries import ZOO_ENTRIES, WeightFile, ZooEntry

__all__ = ["WeightsNotFoundError", "DownloadError", "zoo_dir", "list_models", "get_entry",
           "get_config_file", "get_config", "get", "fetch_weights"]

logger = logging.getLogger(__name__)
ZOO_DIR_ENV = "ACAR_MODEL_ZOO"


class WeightsNotFoundError(FileNotFoundError):
    """A hand-downloaded weight file is not in the zoo folder (the message says what to do)."""


class DownloadError(RuntimeError):
    """Fetching a weight file failed or gave a file with the wrong checksum."""


def zoo_dir() -> str:
    """The folder searched first for every weight file: ``$ACAR_MODEL_ZOO``, else the
    ``acar_d2`` folder of detectron2's (iopath's) cache."""
    if os.environ.get(ZOO_DIR_ENV):
        return os.path.expanduser(os.environ[ZOO_DIR_ENV])
    from iopath.common.file_io import get_cache_dir

    return os.path.join(get_cache_dir(), "acar_d2")


def list_models() -> List[str]:
    """The zoo names, in table order."""
    return list(ZOO_ENTRIES)


def get_entry(name: str) -> ZooEntry:
    if name not in ZOO_ENTRIES:
        raise KeyError(f"{name!r} is not in the acar_d2 model zoo; known: {', '.join(ZOO_ENTRIES)}")
    return ZOO_ENTRIES[name]


def get_config_file(name: str, demo: bool = False) -> str:
    """
    Args:
        name: a zoo name (``list_models()``) or a config path relative to ``configs/``
            (e.g. "AVA/SLOWFAST_R50_ACAR_HR2O.yaml"); installed, the configs are those shipped
            in the package (``acar_d2/model_zoo/configs``, ``acar_d2.config.config_root()``).
        demo: the entry's demo config (the model + the COCO person detector).
    Returns:
        str: the absolute path of the yaml.
    """
    if name in ZOO_ENTRIES:
        entry = ZOO_ENTRIES[name]
        rel = entry.demo_config if demo else entry.config
    else:
        rel = name
    path = config_root() / rel
    if not path.is_file():
        raise RuntimeError(f"{name!r} is neither a zoo name ({', '.join(ZOO_ENTRIES)}) nor a config "
                           f"under {config_root()}")
    return str(path)


def _md5_matches(path: str, prefix: str) -> bool:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest().startswith(prefix)


def _manual_instructions(weights: WeightFile, target: str) -> str:
    return (f"download {os.path.basename(weights.filename)} from {weights.manual_from} and save it "
            f"as {target} (the zoo folder is ${ZOO_DIR_ENV}, default "
            f"~/.torch/iopath_cache/acar_d2; docs/MODEL_ZOO.md)")


def fetch_weights(weights: WeightFile) -> str:
    """
    The local path of a weight file (see the module docstring for the search order).

    Raises:
        WeightsNotFoundError: a file without URL is not in the zoo folder.
        DownloadError: the download failed, or the file's md5 does not start with the known prefix
            (the bad file is renamed ``*.corrupt`` so the next call downloads it again).
    """
    local = os.path.join(zoo_dir(), weights.filename)
    if os.path.isfile(local):
        return local
    if not weights.url:
        raise WeightsNotFoundError(f"model zoo file not found: {local}. To use it, "
                                   + _manual_instructions(weights, local))
    try:
        path = PathManager.get_local_path(weights.url)
    except Exception as e:  # noqa: BLE001 - any network / handler error, re-raised with advice
        raise DownloadError(
            f"downloading {weights.url} failed ({type(e).__name__}: {e}). Run again, or download the "
            f"file by other means and save it as {local}"
        ) from e
    if not os.path.isfile(path):
        raise DownloadError(f"downloading {weights.url} gave no file ({path}); save it by hand as {local}")
    if weights.md5_prefix and not _md5_matches(path, weights.md5_prefix):
        os.replace(path, path + ".corrupt")
        raise DownloadError(
            f"{weights.url}: the downloaded file's md5 does not start with {weights.md5_prefix} "
            f"(cut or corrupt download; moved to {path}.corrupt). Run again to download it anew"
        )
    return path


def get_config(name: str, trained: bool = False, *, demo: bool = False,
               opts: Optional[Sequence[str]] = None) -> CfgNode:
    """
    The acar_d2 config of a zoo entry (not frozen). Reads no weight file and downloads nothing.

    Args:
        name: a zoo name.
        trained: set ``MODEL.WEIGHTS`` (and, for ``demo``, ``MODEL.PERSON_DETECTOR.WEIGHTS``) to
            the entry's zoo URLs (``acar_d2://<file>``), which the checkpointer resolves when it
            loads them (:func:`fetch_weights`: zoo folder, download, or the instruction to
            download by hand); False: both "" (a randomly initialised model).
        demo: the demo config (the model + the frozen COCO person detector).
        opts: ``KEY VALUE`` overrides merged before the weights are set; a weights key given here
            is kept.
    """
    from ..engine import setup_cfg

    entry = get_entry(name)
    opts = list(opts or [])
    cfg = setup_cfg(get_config_file(name, demo=demo), opts, freeze=False)
    given = set(opts[0::2])
    if "MODEL.WEIGHTS" not in given:
        cfg.MODEL.WEIGHTS = entry.weights.zoo_url if trained else ""
    if demo and "MODEL.PERSON_DETECTOR.WEIGHTS" not in given:
        detector = entry.detector
        cfg.MODEL.PERSON_DETECTOR.WEIGHTS = detector.zoo_url if trained and detector else ""
    return cfg


def get(name: str, trained: bool = False, device: Optional[str] = None, *, demo: bool = False,
        opts: Optional[Sequence[str]] = None):
    """
    Build a zoo model (eval mode), with its published weights when ``trained`` (fetched now, by
    the checkpointer; see :func:`get_config`).

    Args:
        name, trained, demo, opts: see :func:`get_config`.
        device: ``MODEL.DEVICE`` ("cpu", "cuda", ...); None = the config's (what the machine has).
    Returns:
        nn.Module: an ``ACARNet``; weights loaded strictly (``ACARCheckpointer``, eval rules).
    """
    from detectron2.modeling import build_model

    from ..checkpoint import ACARCheckpointer

    cfg = get_config(name, trained, demo=demo, opts=opts)
    if device is not None:
        cfg.MODEL.DEVICE = device
    model = build_model(cfg)
    if trained:
        ACARCheckpointer.from_config(model, cfg, purpose="eval").load(cfg.MODEL.WEIGHTS)
    return model.eval()
