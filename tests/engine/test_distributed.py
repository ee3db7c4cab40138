"""
Two-process training on the CPU (gloo) through detectron2's ``launch``: each rank reads different
clips, and DistributedDataParallel keeps the weights identical on both ranks.
"""
import json
from pathlib import Path

import torch
from detectron2.engine import launch
from detectron2.utils import comm

from acar_d2.engine import Trainer

from .conftest import register_world, tiny_cfg

NUM_ITER = 4
OPTS = [
    "SOLVER.IMS_PER_BATCH", "4",  # 2 clips per rank
    "SOLVER.MAX_ITER", str(NUM_ITER),
    "SOLVER.CHECKPOINT_PERIOD", "1000",
    "TEST.EVAL_PERIOD", "0",
    "DATASETS.TEST", "()",  # no final evaluation: this test is about training
]


class _RecordingLoader:
    """Wraps a training loader and records (video_id, timestamp) of every clip it yields."""

    def __init__(self, loader, seen: list):
        self.loader, self.seen = loader, seen

    def __iter__(self):
        for batch in self.loader:
            self.seen.append([(d["video_id"], int(d["timestamp"])) for d in batch])
            yield batch


def _train_one_rank(world: str, out: str) -> None:
    """Runs in each spawned process (rank = comm.get_rank())."""
    register_world(Path(world), "engine_test_world")  # a spawned process has a fresh catalog
    cfg = tiny_cfg(Path(out), OPTS)
    rank = comm.get_rank()
    torch.manual_seed(cfg.SEED + rank)  # as default_setup: the ranks' RNGs differ
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    seen: list = []
    loader = trainer.data_loader
    trainer._trainer.reset_data_loader(lambda: _RecordingLoader(loader, seen))
    trainer.train()
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    torch.save(model.state_dict(), Path(out) / f"rank{rank}.pth")
    (Path(out) / f"rank{rank}_seen.json").write_text(json.dumps(seen))


def test_two_process_gloo_training(tiny_world, tmp_path):
    launch(_train_one_rank, 2, dist_url="auto", args=(str(tiny_world), str(tmp_path)))

    seen = [json.loads((tmp_path / f"rank{r}_seen.json").read_text()) for r in (0, 1)]
    assert [len(s) for s in seen] == [NUM_ITER, NUM_ITER], seen
    for it in range(NUM_ITER):
        assert len(seen[0][it]) == len(seen[1][it]) == 2, (it, seen[0][it], seen[1][it])
        assert set(map(tuple, seen[0][it])) != set(map(tuple, seen[1][it])), (it, seen)

    w0 = torch.load(tmp_path / "rank0.pth", weights_only=False)
    w1 = torch.load(tmp_path / "rank1.pth", weights_only=False)
    assert w0.keys() == w1.keys()
    different = [k for k in w0 if not torch.equal(w0[k], w1[k])]
    assert not different, f"ranks ended with different weights: {different[:5]}"
    # The checkpoint written by rank 0 holds exactly these weights.
    final = torch.load(tmp_path / "model_final.pth", weights_only=False)["model"]
    assert all(torch.equal(final[k], w0[k]) for k in w0)
