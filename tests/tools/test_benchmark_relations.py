"""tools/benchmarks/benchmark_relations.py: the linking objects, the relation-map rate against chance, the
effective receptive field and the per-seed table, on a tiny relation world; the ViT heads'
configs (build, a few training steps) and ``--jobs`` (finished runs skipped, failed ones named)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model

from acar_d2.checkpoint import ACARCheckpointer
from acar_d2.data.datasets.aca_world import register_aca_world
from acar_d2.data.synthetic import write_world
from acar_d2.engine import setup_cfg

REPO = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("benchmark_relations",
                                                  REPO / "tools" / "benchmarks" / "benchmark_relations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_linking_objects(tmp_path):
    tool = _tool()
    world = write_world(str(tmp_path / "w"), num_videos=6, seed=0, write_videos=False,
                        relation=True)
    seen = set()
    for per_t in world["scenes"].values():
        for snap in per_t.values():
            for a in snap["actors"]:
                link = tool.linking_object(a, snap)
                if link is None:
                    assert "ride" not in a["labels"] and "listen" not in a["labels"]
                    continue
                cls, box = link
                seen.add(cls)
                if cls == "ride":  # the passenger sits inside its vehicle's box
                    assert box[0] <= a["x"] <= box[2], (a, box)
                else:  # the listener faces the board: it lies ahead of it on its row
                    centre = (box[0] + box[2]) / 2
                    assert (centre - a["x"]) * a["facing"] > 0, (a, box)
    assert seen == {"ride", "listen"}


def test_relation_map_rate_and_effective_rf(tmp_path):
    tool = _tool()
    world_dir = tmp_path / "rel"
    write_world(str(world_dir), num_videos=3, seed=0, write_videos=False, relation=True)
    register_aca_world(str(world_dir), "relbench")
    try:
        cfg = setup_cfg(str(REPO / "configs/Synthetic/quick_schedules/"
                            "acar_SLOWFAST_R18_instant_test.yaml"),
                        ["DATASETS.TEST", ("relbench_val",), "MODEL.DEVICE", "cpu"], freeze=False)
        torch.manual_seed(0)
        model = build_model(cfg)
        ckpt = tmp_path / "model.pth"
        torch.save({"model": model.state_dict()}, ckpt)
        fig = tmp_path / "maps.png"
        rates = tool.relation_map_rate(cfg, str(ckpt), world_dir, figure=fig, max_frames=9)
        assert rates and set(rates) <= {"ride", "listen"}, rates
        for cls, r in rates.items():
            assert r["actors"] > 0 and 0.0 <= r["peak_in_link"] <= 1.0, r
            # a vehicle / board covers part of the frame, never all of it
            assert 0.0 < r["chance"] < 1.0, r
        assert fig.is_file() and fig.stat().st_size > 1000
        for r in rates.values():
            assert 0.0 <= r["partner_chance"] <= 1.0 or r["partner_actors"] == 0, r
        table = tool.format_map_rates({0: rates, 1: rates})
        assert "chance" in table and len(table.splitlines()) == 2 + len(rates)
        erf = tool.effective_receptive_field(cfg, str(ckpt), clips=2, radii=(0, 1, 20))
        assert 0.0 < erf[0] < erf[1] <= erf[20] and abs(erf[20] - 1.0) < 1e-6, erf
    finally:
        for split in ("train", "val"):
            DatasetCatalog.remove(f"relbench_{split}")
            MetadataCatalog.remove(f"relbench_{split}")


def test_table_lists_every_seed():
    tool = _tool()
    run = {"frame_mAP": 50.0, "per_group": {"pose": 90.0}, "minutes": 1.0, "head_params": 10,
           "per_class": {"ride": 40.0, "listen": 60.0}}
    runs = [dict(run), dict(run, per_class={"ride": 50.0, "listen": 70.0})]
    table = tool.format_table({"acar": runs}, ["ride", "listen"], ["pose"])
    row = table.splitlines()[2]
    assert "55.00 ± 5.00 (50.0 / 60.0)" in row, row
    assert json.loads(json.dumps(runs))  # summaries stay JSON (results.json)
    std = tool.format_indirect_std({"acar": runs}, ["ride", "listen"])
    # indirect 50 and 60: mean 55, sample std 7.07; ride 40 / 50, listen 60 / 70
    assert std == "acar: indirect 55.00 ± 7.07 (std, 2 seeds); ride 45.0 (40.0 / 50.0); listen 65.0 (60.0 / 70.0)", std


def test_hard_negative_separation(tmp_path):
    """Scores equal to the labels separate positives from hard negatives perfectly (AUC 1),
    inverted scores not at all (AUC 0); the counts are those of the world's hard cases."""
    tool = _tool()
    world = write_world(str(tmp_path / "w"), num_videos=20, seed=0, write_videos=False,
                        relation=True)
    ids = {c["name"]: c["id"] for c in world["classes"]}
    W, H = world["width"], world["height"]
    for invert in (False, True):
        rows = []
        for vid in world["splits"]["val"]:
            for t, snap in world["scenes"][vid].items():
                for a in snap["actors"]:
                    box = [a["box"][0] / W, a["box"][1] / H, a["box"][2] / W, a["box"][3] / H]
                    for name in ("ride", "listen"):
                        s = float((name in a["labels"]) != invert)
                        rows.append(f"{vid},{int(t):04d},{box[0]:.3f},{box[1]:.3f},{box[2]:.3f},"
                                    f"{box[3]:.3f},{ids[name]},{s:.6f}")
        csv_file = tmp_path / f"pred{int(invert)}.csv"
        csv_file.write_text("\n".join(rows) + "\n")
        sep = tool.hard_negative_separation(csv_file, world, ids)
        assert "ride (all)" in sep, sep
        for key, r in sep.items():
            if key.endswith("(all)"):
                assert r["positives"] > 0 and r["hard_negatives"] > 0, (key, r)
            if r["positives"] and r["hard_negatives"]:  # a small world's "single row" may lack one
                assert r["auc"] == (0.0 if invert else 1.0), (key, r)
    assert tool._auc([1.0, 0.5], [0.5]) == 0.75


def _vit_actor_batch(num_classes: int = 10):
    """Two 8-frame 64x64 clips with 2 and 1 actors; each actor one pose (0..3) and one other class."""
    from detectron2.structures import Boxes, Instances

    g = torch.Generator().manual_seed(5)
    batch = []
    for boxes, labels in [([[2, 4, 30, 60], [34, 10, 62, 50]], [(0, 6), (2, 9)]), ([[10, 8, 50, 60]], [(3, 4)])]:
        inst = Instances((64, 64), gt_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)))
        gt = torch.zeros(len(boxes), num_classes)
        for i, (pose, other) in enumerate(labels):
            gt[i, pose] = gt[i, other] = 1
        inst.gt_actions = gt
        batch.append({"clip": torch.randn(3, 8, 64, 64, generator=g), "instances": inst})
    return batch


@pytest.mark.parametrize("head,roi_heads", [("vit_linear", "VideoMAEROIHeads"), ("vit_acar", "ACARROIHeads")])
def test_vit_heads_build_and_train(head, roi_heads):
    """The ViT configs of ``--heads vit_linear vit_acar``: the same CPU-sized VideoMAE ViT (width 64,
    4 blocks, AdamW) under the linear and the ACAR head, as the tool builds them for the relation
    world (its SlowFast overrides do not touch the ViT); a few AdamW steps lower the loss."""
    from detectron2.utils.events import EventStorage

    from acar_d2.engine import Trainer
    from acar_d2.modeling.backbone.videomae import VideoMAE

    tool = _tool()
    path = tool.head_config(head)
    assert path.name == f"{head}_VIT_T_1.5k_aca_world.yaml", path
    opts = list(tool.WORLDS["relation"][3]) + ["MODEL.DEVICE", "cpu"]
    cfg = tool.build_cfg(path, Path("unused"), 30, opts, 3, "aca_world_rel")
    assert (cfg.SEED, cfg.SOLVER.MAX_ITER, cfg.SOLVER.WARMUP_ITERS, cfg.DATASETS.TRAIN) == (3, 30, 2, ("aca_world_rel_train",))
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model.backbone, VideoMAE) and type(model.roi_heads).__name__ == roi_heads
    assert (len(model.backbone.blocks), model.backbone.output_shape()["vit"].channels) == (4, 64)
    optimizer = Trainer.build_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.AdamW)
    batch = _vit_actor_batch()
    model.train()
    losses = []
    with EventStorage():
        for _ in range(10):
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert sum(losses[-2:]) / 2 < 0.7 * sum(losses[:2]) / 2, losses
    model.eval()
    from detectron2.structures import Instances

    props = Instances((64, 64), proposal_boxes=batch[0]["instances"].gt_boxes, scores=torch.ones(2))
    with torch.no_grad():
        scores = model([{"clip": batch[0]["clip"], "proposals": props}])[0]["instances"].action_scores
    assert tuple(scores.shape) == (2, 10)
    assert torch.allclose(scores[:, :4].sum(1), torch.ones(2), atol=1e-5)  # pose softmax, both heads


def test_train_parallel_skips_finished_runs_and_names_failed_ones(tmp_path):
    """``--jobs``: a run with its summary.json is not started again (resume); a run whose process
    fails (here: its dataset is not registered) is named in the error."""
    tool = _tool()
    cfgs = [tool.build_cfg(tool.head_config("vit_linear"), tmp_path / name, 2, ["MODEL.DEVICE", "cpu"], 0,
                           "no_such_world") for name in ("done", "broken")]
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "summary.json").write_text("{}")
    with pytest.raises(RuntimeError, match="runs failed") as err:
        tool.train_parallel(cfgs, jobs=2)
    assert str(tmp_path / "broken") in str(err.value) and str(tmp_path / "done") not in str(err.value)
    assert not (tmp_path / "broken" / "summary.json").exists()
    tool.train_parallel(cfgs[:1], jobs=2)  # only finished runs: nothing to start, no error
