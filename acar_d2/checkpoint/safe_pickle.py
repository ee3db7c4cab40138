"""
Reading pickled files (checkpoints, proposal / annotation pickles) without running code from them.

A pickle can name any importable function and call it while it is read (``__reduce__``), so a
crafted ``.pth`` / ``.pkl`` runs its payload on load. Every file acar_d2 reads is plain data:
tensors, NumPy arrays, numbers, strings, lists, dicts. Two readers allow exactly that:

* :func:`torch_load_safely`: ``torch.load(..., weights_only=True)`` with NumPy arrays and dtypes
  added to torch's allow-list (zip checkpoints and legacy non-zip ``torch.save`` files);
* :func:`read_pickle_safely`: a ``pickle.Unpickler`` whose ``find_class`` admits only NumPy array
  / scalar / dtype reconstruction, ``collections.OrderedDict``, ``set`` / ``frozenset`` /
  ``complex`` / ``bytearray`` / ``slice`` and ``_codecs.encode`` (how Python 2 pickles store
  bytes): PySlowFast Caffe2 ``.pkl``, detectron2 model-zoo ``.pkl``, dense-proposal and
  UCF101-24 / ACAR-Net annotation pickles.

Anything else raises :class:`UnsafePickleError` naming the file, the global it asked for and how
to allow full unpickling: ``allow_unsafe=True`` (``MODEL.ALLOW_UNSAFE_PICKLE`` /
``--allow-unsafe-pickle`` in the tools) or the environment variable
``ACAR_ALLOW_UNSAFE_PICKLE=1``. Only do that for files from a source you trust.
"""
import _compat_pickle
import logging
import os
import pickle
import re
from typing import Any, Callable, List

import numpy as np

__all__ = [
    "ALLOW_UNSAFE_ENV",
    "UnsafePickleError",
    "unsafe_pickle_allowed",
    "read_pickle_safely",
    "torch_load_safely",
    "load_plain_or_torch",
    "TORCH_LEGACY_MAGIC",
]

logger = logging.getLogger(__name__)

# Environment variable that allows full unpickling everywhere (e.g. for lazily loaded datasets,
# which see no config). Any value other than "" / "0" allows it.
ALLOW_UNSAFE_ENV = "ACAR_ALLOW_UNSAFE_PICKLE"
# First object of a legacy (non-zip, torch < 1.6 style) ``torch.save`` file.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
DEFAULT_HINT = f"set the environment variable {ALLOW_UNSAFE_ENV}=1"

_SAFE_GLOBALS = {
    (mod, name)
    for prefix in ("numpy.core", "numpy._core")
    for mod, name in (
        (f"{prefix}.multiarray", "_reconstruct"),
        (f"{prefix}.multiarray", "scalar"),
        (f"{prefix}.numeric", "_frombuffer"),
    )
} | {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("builtins", "slice"),
    ("_codecs", "encode"),
}


class UnsafePickleError(ValueError):
    """A pickled file asks for a global outside the plain-data allow-list (it could run code)."""

    def __init__(self, path: str, what: str, global_name: str, hint: str = DEFAULT_HINT):
        self.path, self.global_name = path, global_name
        super().__init__(
            f"{path}: refused to unpickle this {what}: it references '{global_name}', which is not "
            "plain data (tensors, NumPy arrays, numbers, strings, lists, dicts). Unpickling it "
            "could run arbitrary code. If the file comes from a source you trust, allow full "
            f"unpickling: {hint}."
        )


def unsafe_pickle_allowed(flag: bool = False) -> bool:
    """``flag`` or the environment variable ``ACAR_ALLOW_UNSAFE_PICKLE`` set (not "" / "0")."""
    return bool(flag) or os.environ.get(ALLOW_UNSAFE_ENV, "").strip() not in ("", "0")


class _ForbiddenGlobal(pickle.UnpicklingError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` admits only :data:`_SAFE_GLOBALS` (Python 2 names mapped first)."""

    def find_class(self, module: str, name: str):
        mod, nm = module, name
        if (mod, nm) in _compat_pickle.NAME_MAPPING:
            mod, nm = _compat_pickle.NAME_MAPPING[(mod, nm)]
        elif mod in _compat_pickle.IMPORT_MAPPING:
            mod = _compat_pickle.IMPORT_MAPPING[mod]
        if (mod, nm) not in _SAFE_GLOBALS:
            raise _ForbiddenGlobal(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"persistent id {pid!r} (a torch.save file?)")


def read_pickle_safely(
    path: str,
    what: str = "pickle file",
    *,
    allow_unsafe: bool = False,
    hint: str = DEFAULT_HINT,
    encoding: str = "latin1",
) -> Any:
    """
    Unpickle the first object of ``path`` with the plain-data allow-list (module docstring).

    Args:
        path: the file; what: its kind, for messages (e.g. "proposal file").
        allow_unsafe: allow full unpickling when the file needs it (or ``ACAR_ALLOW_UNSAFE_PICKLE``).
        hint: how the caller's user allows it, quoted in the error.
        encoding: for Python 2 ``str`` objects ("latin1" keeps NumPy buffers intact).
    Raises:
        UnsafePickleError: the file names another global and full unpickling is not allowed.
        Any unpickling error of a corrupt file (callers add the file name).
    """
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f, encoding=encoding).load()
        except _ForbiddenGlobal as e:
            if not unsafe_pickle_allowed(allow_unsafe):
                raise UnsafePickleError(path, what, e.name, hint) from None
            forbidden = e.name
    logger.warning("%s: full unpickling (it references %s) because unsafe pickles are allowed",
                   path, forbidden)
    with open(path, "rb") as f:
        return pickle.load(f, encoding=encoding)


def _numpy_globals() -> List[Callable]:
    """NumPy array / scalar / dtype reconstruction, for torch's weights-only allow-list."""
    out = [np.ndarray, np.dtype]
    for mod_name in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            mod = __import__(mod_name, fromlist=["_reconstruct"])
        except ImportError:
            continue
        out += [getattr(mod, "_reconstruct"), getattr(mod, "scalar")]
        break
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return out


_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def torch_load_safely(
    path: str, what: str = "checkpoint", *, allow_unsafe: bool = False, hint: str = DEFAULT_HINT
) -> Any:
    """
    ``torch.load(path, map_location="cpu", weights_only=True)`` that also admits NumPy arrays.

    Raises:
        UnsafePickleError: the file holds other objects and full unpickling is not allowed (with
            it allowed, the file is loaded with ``weights_only=False`` and a warning).
        Errors of torch.load for corrupt files (callers add the file name).
    """
    import torch

    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = _UNSUPPORTED_GLOBAL.search(str(e))
        if m is None and "weights only load failed" not in str(e).lower():
            raise
        name = m.group(1) if m else "an object weights_only loading rejects"
        if not unsafe_pickle_allowed(allow_unsafe):
            raise UnsafePickleError(path, what, name, hint) from None
        logger.warning("%s: full unpickling (it references %s) because unsafe pickles are allowed",
                       path, name)
    return torch.load(path, map_location="cpu", weights_only=False)


def load_plain_or_torch(
    path: str, what: str = "checkpoint", *, allow_unsafe: bool = False, hint: str = DEFAULT_HINT
) -> Any:
    """A zip / legacy ``torch.save`` file via :func:`torch_load_safely`, else a plain pickle
    via :func:`read_pickle_safely` (same arguments and errors)."""
    import zipfile

    if zipfile.is_zipfile(path):
        return torch_load_safely(path, what, allow_unsafe=allow_unsafe, hint=hint)
    obj = read_pickle_safely(path, what, allow_unsafe=allow_unsafe, hint=hint)
    if isinstance(obj, int) and obj == TORCH_LEGACY_MAGIC:
        return torch_load_safely(path, what, allow_unsafe=allow_unsafe, hint=hint)
    return obj
