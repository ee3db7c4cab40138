"""
End to end through ``tools/train_net.py`` on a tiny synthetic world (CPU, seconds):

* train -> periodic checkpoint -> ``--resume`` continues from the saved iteration with the same
  LR, optimizer state, data and RNG streams (final weights equal an uninterrupted run);
* ``--eval-only`` on the final checkpoint gives the metrics of the in-training evaluation;
* the backbone BN stays frozen while the rest trains;
* one batch can be fitted to near-zero loss.
"""
import json
import shutil
from pathlib import Path

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import default_argument_parser
from detectron2.evaluation.testing import flatten_results_dict

from acar_d2.engine import Trainer

from .conftest import INSTANT_CONFIG, TRAIN, load_train_net, tiny_cfg, tiny_cfg_opts

MAX_ITER = 6
SCHEDULE = [
    "SOLVER.MAX_ITER", str(MAX_ITER),
    "SOLVER.CHECKPOINT_PERIOD", "3",
    # The LR changes at every iteration around the resume point (warm-up, then a decay at 4).
    "SOLVER.WARMUP_ITERS", "5",
    "SOLVER.STEPS", "(4,)",
    "SOLVER.LOG_PERIOD", "1",
    "TEST.EVAL_PERIOD", str(MAX_ITER),
]


def run_train_net(output_dir: Path, *flags: str, opts=()):
    argv = ["--config-file", str(INSTANT_CONFIG), *flags]
    argv += tiny_cfg_opts(output_dir) + SCHEDULE + list(opts)
    args = default_argument_parser().parse_args(argv)
    return load_train_net().main(args)


def read_metrics(output_dir: Path) -> list:
    with open(output_dir / "metrics.json") as f:
        return [json.loads(line) for line in f if line.strip()]


def model_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def test_resume_continues_exactly_and_eval_only_matches(tiny_world, tmp_path):
    # Run A: uninterrupted, checkpoints after iterations 2 and 5, evaluation at the end.
    dir_a = tmp_path / "a"
    run_train_net(dir_a)
    metrics_a = {m["iteration"]: m for m in read_metrics(dir_a) if "total_loss" in m}
    assert sorted(metrics_a) == list(range(MAX_ITER)), sorted(metrics_a)
    assert (dir_a / "model_0000002.pth").is_file() and (dir_a / "model_final.pth").is_file()
    assert list(dir_a.glob("events.out.tfevents.*")), "no TensorBoard event file"

    # Run B: the same run, "interrupted" after the checkpoint of iteration 2 (its output folder
    # holds exactly what run A had written at that point), then continued with --resume.
    dir_b = tmp_path / "b"
    dir_b.mkdir()
    shutil.copy(dir_a / "model_0000002.pth", dir_b / "model_0000002.pth")
    (dir_b / "last_checkpoint").write_text("model_0000002.pth")

    # The resumed trainer state, before training: iteration, LR and optimizer as saved.
    cfg_b = tiny_cfg(dir_b, SCHEDULE)
    trainer = Trainer(cfg_b)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 3, trainer.start_iter
    saved = torch.load(dir_b / "model_0000002.pth", weights_only=False)["trainer"]
    restored_opt = trainer.optimizer.state_dict()
    saved_opt = saved["_trainer"]["optimizer"]
    assert len(restored_opt["state"]) == len(saved_opt["state"]) > 0
    for k, st in saved_opt["state"].items():
        assert torch.equal(restored_opt["state"][k]["momentum_buffer"], st["momentum_buffer"]), k
    # The LR of the next step is the one run A used at iteration 3.
    lrs = {g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs == {metrics_a[3]["lr"]}, (lrs, metrics_a[3]["lr"])
    assert trainer.scheduler.last_epoch == 3, trainer.scheduler.last_epoch
    del trainer

    run_train_net(dir_b, "--resume")
    metrics_b = {m["iteration"]: m for m in read_metrics(dir_b) if "total_loss" in m}
    assert sorted(metrics_b) == [3, 4, 5], sorted(metrics_b)
    for it in (3, 4, 5):
        assert metrics_b[it]["lr"] == metrics_a[it]["lr"], (it, metrics_b[it], metrics_a[it])
        assert abs(metrics_b[it]["total_loss"] - metrics_a[it]["total_loss"]) < 1e-6, (
            it, metrics_b[it]["total_loss"], metrics_a[it]["total_loss"])
    final_a, final_b = model_state(dir_a / "model_final.pth"), model_state(dir_b / "model_final.pth")
    assert final_a.keys() == final_b.keys()
    worst = max((final_a[k].float() - final_b[k].float()).abs().max().item() for k in final_a)
    assert worst < 1e-6, f"resumed run diverged from the uninterrupted one: max |diff| {worst}"

    # Backbone BN as the official freeze_bn (NORM FrozenStatsBN): statistics identical between
    # iteration 2 and the end, scale / shift trained, like the convolutions.
    early = model_state(dir_a / "model_0000002.pth")
    stat_keys = [k for k in final_a if k.startswith("backbone.") and ".bn" in k
                 and k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    affine_keys = [k for k in final_a if k.startswith("backbone.") and ".bn" in k
                   and k.endswith((".weight", ".bias"))]
    conv_keys = [k for k in final_a if k.startswith("backbone.") and k.endswith("conv1.weight")]
    assert stat_keys and affine_keys and conv_keys, list(final_a)[:20]
    for k in stat_keys:
        assert torch.equal(early[k], final_a[k]), f"backbone BN statistic {k} changed in training"
    assert any(not torch.equal(early[k], final_a[k]) for k in affine_keys), "BN scale/shift frozen"
    assert any(not torch.equal(early[k], final_a[k]) for k in conv_keys), "backbone did not train"

    # --eval-only on the final checkpoint reproduces the evaluation run at the end of training.
    in_training = read_metrics(dir_a)[-1]
    results = run_train_net(tmp_path / "eval", "--eval-only",
                            opts=["MODEL.WEIGHTS", str(dir_a / "model_final.pth")])
    flat = flatten_results_dict(results)
    assert flat, results
    for key, value in flat.items():
        assert key in in_training, (key, sorted(in_training))
        assert abs(in_training[key] - value) < 1e-9, (key, in_training[key], value)
    assert json.loads((tmp_path / "eval" / "eval_results.json").read_text()) == json.loads(
        json.dumps(results))


def test_overfits_one_batch(tiny_world, tmp_path):
    """With augmentation off, one clip repeated is fitted to near-zero loss (the model can learn)."""
    dicts = [d for d in DatasetCatalog.get(TRAIN) if len(d["annotations"]) >= 2]
    assert dicts, "tiny world has no key frame with two actors"
    name = "engine_test_one_clip"
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: [dicts[0]])
    MetadataCatalog.get(name).set(**{
        k: getattr(MetadataCatalog.get(TRAIN), k)
        for k in ("action_classes", "action_ids", "pose_class_indices", "class_groups")
    })
    opts = [
        "DATASETS.TRAIN", f"('{name}',)",
        "DATASETS.TEST", "()",
        "INPUT.CLIP.FLIP_PROB", "0.0",
        "INPUT.CLIP.BOX_JITTER", "0.0",
        "MODEL.ACTION_HEAD.HR2O_DROPOUT", "0.0",
        "SOLVER.IMS_PER_BATCH", "2",
        # 0.05 diverged for a few iterations after RoIAlign started reading the padded part of the
        # square clip (official semantics); 0.02 fits the clip without that spike.
        "SOLVER.BASE_LR", "0.02",
        "SOLVER.WARMUP_ITERS", "0",
        "SOLVER.STEPS", "(70,)",  # x0.1 for the last 30 iterations: settle in the minimum
        "SOLVER.MAX_ITER", "100",
        "SOLVER.CHECKPOINT_PERIOD", "1000",
        "SOLVER.LOG_PERIOD", "1",
        "TEST.EVAL_PERIOD", "0",
    ]
    args = default_argument_parser().parse_args(
        ["--config-file", str(INSTANT_CONFIG)] + tiny_cfg_opts(tmp_path) + opts)
    load_train_net().main(args)
    losses = [m["total_loss"] for m in read_metrics(tmp_path) if "total_loss" in m]
    assert len(losses) == 100, len(losses)
    first, last = losses[0], sum(losses[-5:]) / 5
    assert last < 0.01 and last < first / 50, (first, last, losses[::10])


def test_amp_on_cpu_is_refused(tmp_path):
    """AMP is CUDA autocast: asking for it on the CPU fails at once, naming the key."""
    cfg = tiny_cfg(tmp_path, ["SOLVER.AMP.ENABLED", "True", "DATASETS.TRAIN", "()"])
    with pytest.raises(ValueError, match="AMP"):
        Trainer(cfg)
