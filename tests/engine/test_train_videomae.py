"""
``tools/train_net.py`` with the ACAR-on-ViT config (configs/VideoMAE/acar_hr2o_depth2_VIT_B_*.yaml)
shrunk to CPU size, on the tiny synthetic world: the trainer builds the configured AdamW with
layer-wise LR decay and the warm-up + cosine schedule, trains, checkpoints and evaluates.
"""
import json
from pathlib import Path

import torch
from detectron2.engine import default_argument_parser

from acar_d2.data.synthetic.scene import CLASSES

from .conftest import TRAIN, VAL, load_train_net

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "VideoMAE" / "acar_hr2o_depth2_VIT_B_k400_mae_ft_16x4_ava_v2.2.yaml"


def test_acar_on_vit_trains_through_train_net(tiny_world, tmp_path):
    pose = [i for i, c in enumerate(CLASSES) if c.group == "pose"]
    opts = [
        "DATASETS.TRAIN", f"('{TRAIN}',)", "DATASETS.TEST", f"('{VAL}',)",
        "MODEL.ACTION_HEAD.NUM_CLASSES", str(len(CLASSES)), "MODEL.ACTION_HEAD.POSE_CLASS_INDICES", str(pose),
        "MODEL.VIDEOMAE.DEPTH", "2", "MODEL.VIDEOMAE.EMBED_DIM", "32", "MODEL.VIDEOMAE.NUM_HEADS", "2",
        "MODEL.ACTION_HEAD.REDUCE_DIM", "16", "MODEL.ACTION_HEAD.HIDDEN_DIM", "16",
        "INPUT.CLIP.NUM_FRAMES", "4", "INPUT.CLIP.SHORT_SIDE", "64", "INPUT.CLIP.MAX_SIZE", "0",
        "INPUT.CLIP.PAD_TO_SQUARE", "True", "INPUT.CLIP.VALUE_SCALE", "255.0",
        "INPUT.CLIP.PIXEL_MEAN", "[0.45, 0.45, 0.45]", "INPUT.CLIP.PIXEL_STD", "[0.225, 0.225, 0.225]",
        "DATALOADER.NUM_WORKERS", "0", "MODEL.DEVICE", "cpu", "SEED", "7", "OUTPUT_DIR", str(tmp_path),
        "SOLVER.IMS_PER_BATCH", "2", "SOLVER.BASE_LR", "0.001", "SOLVER.BASE_LR_END", "0.0",
        "SOLVER.WARMUP_ITERS", "2", "SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "3",
        "SOLVER.LOG_PERIOD", "1", "TEST.EVAL_PERIOD", "6",
    ]
    args = default_argument_parser().parse_args(["--config-file", str(CONFIG), *opts])
    load_train_net().main(args)
    with open(tmp_path / "metrics.json") as f:
        metrics = [json.loads(line) for line in f if line.strip()]
    train = [m for m in metrics if "total_loss" in m]
    assert [m["iteration"] for m in train] == list(range(6)), train
    assert all(m["total_loss"] > 0 for m in train)
    # warm-up from 0.004 x BASE_LR to the cosine, and the cosine decay to 0 at the end
    lrs = [m["lr"] for m in train]
    assert abs(lrs[0] - 0.001 * 0.004) < 1e-9 and max(lrs) > 0.0005 and lrs[-1] < lrs[2], lrs
    final = torch.load(tmp_path / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    assert "backbone.blocks.1.attn.q_bias" in final and "roi_heads.hr2o.1.conv_q.weight" in final
    groups = torch.load(tmp_path / "model_0000002.pth", map_location="cpu", weights_only=False)["trainer"]["_trainer"]["optimizer"]["param_groups"]
    assert len(groups) == 8 and {round(g["lr_scale"], 6) for g in groups} == {0.75 ** 3, 0.75 ** 2, 0.75, 1.0}
    evals = [m for m in metrics if "ava/frame_mAP@0.5" in m]
    assert len(evals) == 1 and 0.0 <= evals[0]["ava/frame_mAP@0.5"] <= 100.0, metrics[-1]
