"""
Access to the golden data in ``tests/golden`` (produced with the official implementations; see
``tests/golden/README.md`` for where each file comes from).

Everything is read from inside the repository. Tests that need a golden file fail (never skip)
when it is missing.
"""
import json
import math
import zlib
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = REPO_ROOT / "tests" / "golden"


def reference_dir() -> Path:
    """``tests/golden``: ``acar_official/`` (ACAR-Net golden cases, key mapping) and ``ava_eval/``."""
    if not (GOLDEN_DIR / "acar_official").is_dir():
        raise FileNotFoundError(f"golden data not found in {GOLDEN_DIR} (incomplete checkout?)")
    return GOLDEN_DIR


def golden_case_dir(name: str = "public_r50_depth2") -> Path:
    return reference_dir() / "acar_official" / name


def build_golden_state_dict(case_dir: Path) -> dict:
    """
    Rebuild the seeded official-format state dict of a golden case (recipe in tests/golden/README.md).

    Returns:
        dict[str, Tensor]: keys exactly as in ``keys.json`` (``module.backbone.module.*``, ...).
    """
    keys = json.loads((case_dir / "keys.json").read_text())
    base = json.loads((case_dir / "case.json").read_text())["weights"]["BASE"]
    state = {}
    for key, shape, dtype in keys:
        g = torch.Generator().manual_seed(base + zlib.crc32(key.encode()))
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            t = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_mean"):
            t = torch.randn(shape, generator=g) * 0.1
        elif key.endswith("running_var"):
            t = torch.rand(shape, generator=g) * 0.5 + 1.0
        elif key.endswith("bias"):
            t = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 1:
            t = torch.randn(shape, generator=g) * 0.1 + 1.0
        else:
            t = torch.randn(shape, generator=g) * math.sqrt(1.0 / math.prod(shape[1:]))
        assert dtype == str(t.dtype).replace("torch.", ""), (key, dtype, t.dtype)
        state[key] = t
    return state


def videomae_case_dir(name: str = "public_vits") -> Path:
    """``tests/golden/videomae/<name>``: official VideoMAE detection model runs (README there)."""
    return reference_dir() / "videomae" / name


def build_videomae_golden_state_dict(case_dir: Path) -> dict:
    """
    The seeded official-layout VideoMAE state dict of a golden case: recipe ``acar_golden_recipe_v1``
    (as :func:`build_golden_state_dict`) over the ``key [shape]`` lines of ``keys.txt``, with
    ``BASE`` from ``case.json``.
    """
    base = json.loads((case_dir / "case.json").read_text())["base"]
    state = {}
    for line in (case_dir / "keys.txt").read_text().splitlines():
        key, shape = line.split(" ", 1)
        shape = tuple(json.loads(shape))
        g = torch.Generator().manual_seed(base + zlib.crc32(key.encode()))
        if key.endswith("bias"):
            t = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 1:
            t = torch.randn(shape, generator=g) * 0.1 + 1.0
        else:
            t = torch.randn(shape, generator=g) * math.sqrt(1.0 / math.prod(shape[1:]))
        state[key] = t
    return state


def check_golden_checksums(case_dir: Path, state: dict) -> None:
    """Assert the rebuilt weights match ``weights_checksum.json`` (sum / abs-sum per key)."""
    sums = json.loads((case_dir / "weights_checksum.json").read_text())
    if "per_key" in sums:
        sums = sums["per_key"]
    for key, ref in sums.items():
        if key not in state:
            continue
        t = state[key].double()
        got_sum, got_abs = float(t.sum()), float(t.abs().sum())
        ref_sum = ref["sum"] if isinstance(ref, dict) else ref[0]
        ref_abs = ref["abs_sum"] if isinstance(ref, dict) else ref[1]
        assert math.isclose(got_sum, ref_sum, rel_tol=1e-9, abs_tol=1e-6), (key, got_sum, ref_sum)
        assert math.isclose(got_abs, ref_abs, rel_tol=1e-9, abs_tol=1e-6), (key, got_abs, ref_abs)


def load_golden_case(name: str = "public_r50_depth2"):
    """
    The seeded official checkpoint of a golden case with its recorded run: ``(state, inputs,
    outputs)``, the state dict rebuilt from ``keys.json`` and checked against its checksums.
    """
    case = golden_case_dir(name)
    state = build_golden_state_dict(case)
    check_golden_checksums(case, state)
    return state, torch.load(case / "inputs.pt"), torch.load(case / "outputs.pt")
