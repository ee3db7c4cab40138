"""
Shared fixtures of the engine tests: a tiny synthetic world (4 videos) registered under test-only
dataset names, a tiny config on top of the Synthetic instant-test config, and ``train_net``.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from acar_d2.engine import setup_cfg
from acar_d2.data.datasets import register_aca_world

REPO = Path(__file__).resolve().parents[2]
INSTANT_CONFIG = REPO / "configs" / "Synthetic" / "quick_schedules" / "acar_SLOWFAST_R18_instant_test.yaml"
TRAIN, VAL = "engine_test_world_train", "engine_test_world_val"


def load_train_net():
    """``tools/train_net.py`` as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("train_net", REPO / "tools" / "train_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def register_world(world: Path, prefix: str) -> None:
    for split in ("train", "val"):
        name = f"{prefix}_{split}"
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
    register_aca_world(str(world), prefix)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """A 4-video synthetic world, generated once per session and registered as TRAIN / VAL."""
    out = tmp_path_factory.mktemp("world") / "aca_world"
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_synthetic_ava.py"), "--out", str(out),
         "--videos", "4", "--no-videos"],
        check=True, capture_output=True, cwd=REPO,
    )
    register_world(out, "engine_test_world")
    return out


def tiny_cfg_opts(output_dir: Path) -> list:
    """Command-line style overrides making the instant-test config test-sized (seconds per run)."""
    return [
        "DATASETS.TRAIN", f"('{TRAIN}',)",
        "DATASETS.TEST", f"('{VAL}',)",
        "MODEL.SLOWFAST.WIDTH", "8",  # smallest width with beta_inv 8
        "INPUT.CLIP.NUM_FRAMES", "4",
        "INPUT.CLIP.SHORT_SIDE", "64",
        "DATALOADER.NUM_WORKERS", "0",
        "MODEL.DEVICE", "cpu",
        "SEED", "7",
        "OUTPUT_DIR", str(output_dir),
    ]


def tiny_cfg(output_dir: Path, extra_opts=()):
    return setup_cfg(str(INSTANT_CONFIG), tiny_cfg_opts(output_dir) + list(extra_opts), freeze=False)
