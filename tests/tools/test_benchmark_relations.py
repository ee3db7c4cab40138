"""tools/benchmark_relations.py: the linking objects, the relation-map rate against chance, the
effective receptive field and the per-seed table, on a tiny relation world."""
import importlib.util
import json
from pathlib import Path

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
                                                  REPO / "tools" / "benchmark_relations.py")
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
