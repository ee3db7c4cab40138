"""
Reading foreign checkpoint files and converting them to detectron2 key space (pure functions,
no model needed).

Sources (file layouts and key mapping described in ``docs/CHECKPOINTS.md``):

* ``"detectron2"``: ``{"model": state_dict, ...}`` with ``backbone.*`` / ``roi_heads.*`` keys,
  as written by detectron2's checkpointer or :func:`convert_file`: passed through.
* ``"pyslowfast"``: PySlowFast ``.pyth`` (dict with ``model_state``; ``s1.pathway0_stem...``).
* ``"caffe2"``: PySlowFast Caffe2 ``.pkl`` (latin-1 pickle with ``blobs`` of numpy arrays).
* ``"acar"``: official ACAR-Net ``.pth.tar`` (flat mapping, or a dict holding ``state_dict`` /
  ``model_state`` / ``model``); one leading ``module.`` is stripped; ``backbone.module.<k>`` ->
  ``backbone.<acar_d2 name of k>``, ``head.module.<k>`` -> ``roi_heads.<k>`` (rest unchanged).
* ``"acar_backbone"``: official ACAR-Net backbone pretrain files (bare SlowFast keys).
* ``"videomae"``: official VideoMAE files (``{"model": ...}``, ``{"module": ...}`` or flat; keys
  optionally prefixed ``backbone.`` / ``encoder.``): the ViT -> ``backbone.*`` unchanged, the
  linear ``head`` -> ``roi_heads.projection.*`` with ``keep_classifier``.

Documented droppable source keys (returned in ``ConversionResult.dropped``, never an error):
BN ``num_batches_tracked`` (frozen BN has no use for it; ``ACARCheckpointer`` ignores it when an
``nn.BatchNorm3d`` model misses it), PySlowFast's Kinetics classifier ``head.projection.*``,
Caffe2's ``pred_w`` / ``pred_b`` and its solver blobs (``*momentum*``, ``lr``, ``model_iter``),
VideoMAE's MAE decoder (``decoder.*``, ``encoder_to_decoder.*``, ``mask_token``), fixed position
table ``pos_embed``, Kinetics ``fc_norm.*`` and, without ``keep_classifier``, its ``head.*``.
Any other key without a mapping raises ``UnknownKeysError`` naming the file and the keys.
With ``keep_classifier`` (a model with ``PySlowFastROIHeads``: PySlowFast's AVA models) the
PySlowFast / Caffe2 classifier is kept as ``roi_heads.projection.*`` instead of dropped.
"""
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
import torch

from .key_mapping import (
    acar_backbone_to_d2,
    caffe2_to_d2,
    pyslowfast_head_to_d2,
    pyslowfast_to_d2,
    strip_videomae_prefix,
    videomae_to_d2,
)
from .safe_pickle import UnsafePickleError, load_plain_or_torch

__all__ = [
    "SOURCES",
    "ConversionResult",
    "UnknownKeysError",
    "load_checkpoint_object",
    "detect_source",
    "convert_checkpoint",
    "convert_checkpoint_with_report",
    "convert_file",
    "save_detectron2_checkpoint",
    "check_output_path",
    "AUTHOR",
    "UNSAFE_PICKLE_HINT",
]

# How a user allows full unpickling of a checkpoint (quoted by UnsafePickleError).
UNSAFE_PICKLE_HINT = (
    "MODEL.ALLOW_UNSAFE_PICKLE True (tools: --allow-unsafe-pickle; anywhere: the environment "
    "variable ACAR_ALLOW_UNSAFE_PICKLE=1)"
)

# ``__author__`` of the files written by ``convert_file`` / ``tools/convert_checkpoint.py``.
AUTHOR = "acar_d2 convert_checkpoint"

SOURCES = ("auto", "detectron2", "pyslowfast", "caffe2", "acar", "acar_backbone", "videomae")
# "module": the official VideoMAE files' other container (their --model_key model|module).
_CONTAINERS = ("state_dict", "model_state", "model", "module")
_VIDEOMAE_DROPPED = re.compile(r"(decoder\.|encoder_to_decoder\.|fc_norm\.|head\.).*|mask_token|pos_embed")
_FUSE_BN = re.compile(r"(^|\.)fuse\.\w+\.bn\.")


class UnknownKeysError(KeyError):
    """Source keys that have no mapping to acar_d2 names (a ``KeyError`` listing all of them)."""

    def __init__(self, source: str, where: str, keys: List[str]):
        self.keys = list(keys)
        shown = ", ".join(self.keys[:20]) + (f", ... ({len(self.keys)} in all)" if len(self.keys) > 20 else "")
        self.message = f"{len(self.keys)} {source} key(s) in {where} have no acar_d2 mapping: {shown}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return self.message


@dataclass
class ConversionResult:
    """``state``: detectron2-space tensors; ``source``: detected/forced source; ``dropped``: keys."""

    state: Dict[str, torch.Tensor]
    source: str
    dropped: List[str] = field(default_factory=list)


def load_checkpoint_object(path: str, *, allow_unsafe_pickle: bool = False) -> Any:
    """
    Read a checkpoint file of any supported format into Python objects (on CPU), without running
    code from it.

    Zip-format and legacy ``torch.save`` files go through ``torch.load(..., weights_only=True)``
    (NumPy arrays admitted); other files are read as (latin-1) pickles of plain data, the Caffe2
    and detectron2 model-zoo ``.pkl`` format (``acar_d2/checkpoint/safe_pickle.py``).

    Args:
        allow_unsafe_pickle: allow full unpickling of files holding other objects (they can run
            code); also allowed by the environment variable ``ACAR_ALLOW_UNSAFE_PICKLE=1``.
    Raises:
        FileNotFoundError: missing file. UnsafePickleError (a ValueError): the file holds
        objects other than plain data and full unpickling is not allowed. ValueError:
        unreadable / corrupt file. All name the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return load_plain_or_torch(path, "checkpoint", allow_unsafe=allow_unsafe_pickle,
                                   hint=UNSAFE_PICKLE_HINT)
    except UnsafePickleError:
        raise
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"cannot read checkpoint {path} (corrupt or truncated?): {e!r}") from e


def _strip_module(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def _unwrap(obj: Any, where: str) -> Mapping[str, Any]:
    """The flat name -> tensor mapping of a checkpoint object (container keys removed)."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"checkpoint {where} holds a {type(obj).__name__}, not a mapping")
    if "blobs" in obj and isinstance(obj["blobs"], Mapping):
        return obj["blobs"]
    for name in _CONTAINERS:
        if name in obj and isinstance(obj[name], Mapping):
            return obj[name]
    return obj


def detect_source(obj: Any, where: str = "<object>") -> str:
    """
    Guess the source format of a checkpoint object from its container and key names.

    Returns:
        str: one of ``SOURCES`` except "auto". Raises ValueError when nothing matches.
    """
    if isinstance(obj, Mapping) and "blobs" in obj:
        return "caffe2"
    keys = [_strip_module(k) for k in _unwrap(obj, where).keys() if isinstance(k, str)]
    if any(k.startswith(("backbone.module.", "head.module.")) for k in keys):
        return "acar"
    if any(re.match(r"s\d+(_fuse)?\.", k) for k in keys):
        return "pyslowfast"
    if any(re.match(r"(slow|fast)_(conv1|bn1|res\d)|Tconv\d", k) for k in keys):
        return "acar_backbone"
    if not any(k.startswith("roi_heads.") for k in keys) and any(
        strip_videomae_prefix(k).startswith("patch_embed.") for k in keys
    ):
        return "videomae"
    if any(k.startswith(("backbone.", "roi_heads.")) for k in keys):
        return "detectron2"
    if any(re.fullmatch(r"(t_)?conv1_w|(t_)?res\d_\d+_branch\w+", k) for k in keys):
        return "caffe2"
    raise ValueError(
        f"cannot tell the format of checkpoint {where}; first keys: {keys[:8]} "
        f"(pass source= one of {SOURCES[1:]})"
    )


def _to_tensor(value: Any, key: str, where: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise ValueError(f"checkpoint {where}: value of {key!r} is a {type(value).__name__}, not a tensor")


def _is_droppable(source: str, key: str) -> bool:
    if key.endswith("num_batches_tracked"):
        return True
    if source == "pyslowfast":
        return key.startswith("head.projection.")
    if source == "caffe2":
        return key in ("pred_w", "pred_b", "lr", "model_iter") or "momentum" in key
    if source == "videomae":
        return bool(_VIDEOMAE_DROPPED.fullmatch(strip_videomae_prefix(_strip_module(key))))
    return False


def _map_key(source: str, key: str) -> Optional[str]:
    """One source key -> detectron2-space key, or None when unmapped."""
    if source == "videomae":  # full keys (backbone.* and roi_heads.*), tried before the drop list
        return videomae_to_d2(_strip_module(key))
    if source == "pyslowfast":
        new = pyslowfast_to_d2(key)
    elif source == "caffe2":
        new = caffe2_to_d2(key)
    elif source == "acar_backbone":
        new = acar_backbone_to_d2(key)
    elif source == "acar":
        key = _strip_module(key)
        if key.startswith("backbone.module."):
            new = acar_backbone_to_d2(key[len("backbone.module.") :])
        elif key.startswith("head.module."):
            # the ACAR head engineer names parameters exactly like the official head
            return "roi_heads." + key[len("head.module.") :]
        else:
            new = None
    else:
        raise ValueError(f"unknown checkpoint source {source!r}; expected one of {SOURCES}")
    return None if new is None else "backbone." + new


def convert_checkpoint_with_report(
    obj_or_path: Union[str, os.PathLike, Mapping[str, Any]],
    source: str = "auto",
    *,
    fusion_only_conv: Optional[bool] = None,
    where: Optional[str] = None,
    allow_unsafe_pickle: bool = False,
    keep_classifier: bool = False,
) -> ConversionResult:
    """
    Like ``convert_checkpoint`` but also returns the source used and the dropped keys.

    ``where`` names an already loaded object in error messages (default: its path, if given);
    ``allow_unsafe_pickle`` as in :func:`load_checkpoint_object`; ``keep_classifier``: map the
    PySlowFast / Caffe2 classifier to ``roi_heads.projection.*`` (module docstring).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown checkpoint source {source!r}; expected one of {SOURCES}")
    if isinstance(obj_or_path, (str, os.PathLike)):
        where = os.fspath(obj_or_path)
        obj = load_checkpoint_object(where, allow_unsafe_pickle=allow_unsafe_pickle)
    else:
        where, obj = where or "<in-memory checkpoint>", obj_or_path
    if source == "auto":
        source = detect_source(obj, where)
    flat = _unwrap(obj, where)

    if source == "detectron2":
        state = {k: _to_tensor(v, k, where) for k, v in flat.items()}
        return ConversionResult(state, source)

    state: Dict[str, torch.Tensor] = {}
    dropped, unknown = [], []
    for key, value in flat.items():
        head_key = pyslowfast_head_to_d2(key) if keep_classifier and source in ("pyslowfast", "caffe2") else None
        if head_key is not None:
            state["roi_heads." + head_key] = _to_tensor(value, key, where)
            continue
        if source == "videomae":
            new = videomae_to_d2(_strip_module(key), keep_classifier)
            if new is not None:
                if new in state:
                    raise ValueError(f"checkpoint {where}: two source keys map to {new!r} (last: {key!r})")
                state[new] = _to_tensor(value, key, where)
                continue
        if _is_droppable(source, key):
            dropped.append(key)
            continue
        new = _map_key(source, key)
        if new is None:
            unknown.append(key)
            continue
        if new in state:
            raise ValueError(f"checkpoint {where}: two source keys map to {new!r} (last: {key!r})")
        state[new] = _to_tensor(value, key, where)
    if unknown:
        raise UnknownKeysError(source, where, unknown)

    fuse_bn = sorted(k for k in state if _FUSE_BN.search(k))
    if fusion_only_conv and fuse_bn:
        # Official R101 laterals are a bare conv: PySlowFast R101's fuse BNs have no place in it
        # and dropping them would silently change the forward (docs/CHECKPOINTS.md, section 3).
        raise ValueError(
            f"checkpoint {where} has lateral-connection BN tensors ({fuse_bn[:3]} ...), but the "
            "target SlowFast uses plain-conv fusion (FUSION_ONLY_CONV, official R101). These "
            "weights come from a conv+BN fusion model (e.g. PySlowFast R101) and cannot be used "
            "as is; set FUSION_ONLY_CONV False to build a matching model."
        )
    return ConversionResult(state, source, dropped)


def convert_checkpoint(
    obj_or_path: Union[str, os.PathLike, Mapping[str, Any]],
    source: str = "auto",
    *,
    fusion_only_conv: Optional[bool] = None,
    allow_unsafe_pickle: bool = False,
) -> Dict[str, torch.Tensor]:
    """
    Convert a checkpoint (file path or already loaded object) to detectron2 key space.

    Args:
        obj_or_path: path to a ``.pyth`` / ``.pkl`` / ``.pth(.tar)`` file, or its loaded object.
        source (str): "auto" (detect from container and key names) or one of
            "detectron2", "pyslowfast", "caffe2", "acar", "acar_backbone".
        fusion_only_conv (bool or None): the target model's lateral type when known; True makes
            lateral BN tensors in the source an error (see module docstring).
        allow_unsafe_pickle (bool): see :func:`load_checkpoint_object`.
    Returns:
        dict[str, Tensor]: ``backbone.<acar_d2 name>`` and ``roi_heads.<official head name>``.
    Raises:
        UnknownKeysError: source keys without a mapping (all of them listed, with the file).
        ValueError / FileNotFoundError: unreadable file, unknown format, non-tensor values.
    """
    return convert_checkpoint_with_report(
        obj_or_path, source, fusion_only_conv=fusion_only_conv,
        allow_unsafe_pickle=allow_unsafe_pickle,
    ).state


def save_detectron2_checkpoint(state: Dict[str, torch.Tensor], path: Union[str, os.PathLike]) -> None:
    """Write ``{"model": state, "__author__": "acar_d2 convert_checkpoint"}`` (detectron2 format)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({"model": state, "__author__": AUTHOR}, path)


def convert_file(
    input_path: Union[str, os.PathLike],
    output_path: Union[str, os.PathLike],
    source: str = "auto",
    fusion_only_conv: Optional[bool] = None,
    *,
    overwrite: bool = False,
    allow_unsafe_pickle: bool = False,
) -> ConversionResult:
    """
    Convert the checkpoint file ``input_path`` and write the detectron2-format file
    ``output_path`` (what ``tools/convert_checkpoint.py`` does).

    The output holds only tensors under ``{"model": ..., "__author__": ...}``, so plain
    ``DetectionCheckpointer`` / ``torch.load(..., weights_only=True)`` read it. It is written to a
    temporary file first and renamed, so an interrupted run leaves no half file.

    Args:
        input_path: a ``.pyth`` / ``.pkl`` / ``.pth(.tar)`` file of any supported source.
        output_path: where to write the converted file (parent folders are created); never the
            input itself (its optimizer state / iteration would be lost).
        source, fusion_only_conv, allow_unsafe_pickle: as in :func:`convert_checkpoint`.
        overwrite: replace an existing ``output_path`` (otherwise an error).
    Returns:
        ConversionResult: the converted state, the source used and the dropped keys.
    Raises:
        ValueError: ``output_path`` is ``input_path``. FileExistsError: ``output_path`` exists
        and ``overwrite`` is False.
    """
    check_output_path(input_path, output_path, overwrite)
    result = convert_checkpoint_with_report(
        input_path, source, fusion_only_conv=fusion_only_conv,
        allow_unsafe_pickle=allow_unsafe_pickle,
    )
    tmp = os.fspath(output_path) + ".tmp"
    save_detectron2_checkpoint(result.state, tmp)
    os.replace(tmp, output_path)
    return result


def check_output_path(
    input_path: Union[str, os.PathLike], output_path: Union[str, os.PathLike], overwrite: bool
) -> None:
    """Refuse writing the converted file over its input (always) or over any file (unless
    ``overwrite``), before anything is read."""
    inp, out = os.fspath(input_path), os.fspath(output_path)
    same = os.path.realpath(inp) == os.path.realpath(out)
    if not same and os.path.exists(inp) and os.path.exists(out):
        same = os.path.samefile(inp, out)
    if same:
        raise ValueError(
            f"output {out} is the input checkpoint {inp}: converting in place would replace it "
            "(a training checkpoint loses its optimizer state and iteration); choose another "
            "output path"
        )
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"output {out} exists; pass --overwrite (overwrite=True) to replace it")
