"""Shared helpers of the demo tests: small videos with known content and tiny saved models."""
import importlib.util
from pathlib import Path
from typing import List

import numpy as np
import torch
from detectron2.modeling import build_model

from acar_d2.checkpoint import ACARCheckpointer
from acar_d2.engine import setup_cfg
from acar_d2.data.video_io import write_video

REPO = Path(__file__).resolve().parents[2]
DETECTOR_CONFIG = str(REPO / "configs" / "Synthetic" / "acar_detector_SLOWFAST_R18_1.5k_aca_world.yaml")
# CPU-sized overrides of the joint (detector + action) config; TEST_PROPOSAL_SCORE_THRESH 0 so that the
# randomly initialised detector returns boxes (its top 20).
DETECTOR_OPTS = ["MODEL.DEVICE", "cpu", "INPUT.CLIP.NUM_FRAMES", "4", "INPUT.CLIP.SHORT_SIDE", "64",
                 "MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH", "0.0",
                 "MODEL.ROI_HEADS.NAME", "BaselineROIHeads"]
# The same action model without a detector (person boxes must be given).
BOXES_CONFIG = str(REPO / "configs" / "Synthetic" / "Base-Synthetic.yaml")
BOXES_OPTS = ["MODEL.DEVICE", "cpu", "INPUT.CLIP.NUM_FRAMES", "4", "INPUT.CLIP.SHORT_SIDE", "64",
              "MODEL.SLOWFAST.FUSION_KERNEL_SIZE", "3", "MODEL.ACTION_HEAD.REDUCE_DIM", "16",
              "MODEL.ACTION_HEAD.HIDDEN_DIM", "8"]


def moving_frames(n: int = 24, size=(120, 160), seed: int = 0) -> List[np.ndarray]:
    """n RGB frames: textured background, a bright block moving right, a green block standing."""
    rng = np.random.RandomState(seed)
    h, w = size
    background = rng.randint(40, 90, (h, w, 3)).astype(np.uint8)
    frames = []
    for i in range(n):
        f = background.copy()
        x = 10 + 3 * i
        f[30:90, x:x + 20] = 220
        f[40:100, w - 50:w - 35] = (30, 200, 90)
        frames.append(f)
    return frames


def write_test_video(path, n: int = 24, fps: float = 8, size=(120, 160)) -> List[np.ndarray]:
    frames = moving_frames(n, size)
    write_video(str(path), frames, fps)
    return frames


def saved_model(cfg_file: str, opts, folder) -> str:
    """Build the model of ``cfg_file + opts`` with seed 0, save it; returns the checkpoint path."""
    cfg = setup_cfg(cfg_file, opts)
    torch.manual_seed(0)
    model = build_model(cfg)
    ACARCheckpointer(model, save_dir=str(folder)).save("model")
    return str(Path(folder) / "model.pth")


def load_tool(name: str):
    """tools/<name>.py (a benchmark: tools/benchmarks/<name>.py) as a module (its ``main(argv)``
    runs in-process)."""
    folder = REPO / "tools" / ("benchmarks" if name.startswith("benchmark_") else "")
    spec = importlib.util.spec_from_file_location(f"tool_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decode(path) -> List[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def video_rate(path) -> float:
    import av

    with av.open(str(path)) as c:
        return float(c.streams.video[0].average_rate)
