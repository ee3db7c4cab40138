"""
A non-finite loss stops training with detectron2's ``FloatingPointError`` naming the iteration,
before the optimizer applies it; the last good checkpoint stays ``last_checkpoint`` and no
``model_final.pth`` is written from the broken state.
"""
import math
from pathlib import Path

import pytest
import torch

from acar_d2.engine import Trainer

from .conftest import tiny_cfg

BAD_ITER = 3


def test_nan_loss_stops_with_the_iteration_and_keeps_the_last_checkpoint(tiny_world, tmp_path):
    cfg = tiny_cfg(tmp_path, [
        "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "2",
        "TEST.EVAL_PERIOD", "0", "DATASETS.TEST", "()",
    ])
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    model = trainer.model
    forward = model.forward
    calls = []

    def poisoned(batched_inputs):
        losses = forward(batched_inputs)
        calls.append(len(calls))
        if len(calls) - 1 == BAD_ITER:
            losses["loss_action"] = losses["loss_action"] * math.nan
        return losses

    model.forward = poisoned
    with pytest.raises(FloatingPointError, match=f"iteration={BAD_ITER}"):
        trainer.train()
    out = Path(cfg.OUTPUT_DIR)
    assert (out / "last_checkpoint").read_text().strip() == "model_0000001.pth"
    assert not (out / "model_final.pth").exists()
    saved = torch.load(out / "model_0000001.pth", weights_only=False)["model"]
    assert all(torch.isfinite(v).all() for v in saved.values() if v.is_floating_point())
    # the NaN step was not applied: the weights in memory are finite
    assert all(torch.isfinite(p).all() for p in model.parameters())
