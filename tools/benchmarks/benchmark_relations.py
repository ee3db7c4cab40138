#!/usr/bin/env python
"""
Relation heads compared on the synthetic world: linear baseline, actor-actor, actor-context and
ACAR (HR2O), trained with the same backbone, data, seed and schedule (``configs/Synthetic/``).

The synthetic world has two *indirect* classes ("ride", "listen": decidable only from another
actor's relation to a shared object, ACAR Sec. 1 / Fig. 1); the table reports their mean AP apart
from the direct interaction classes, which is where actor-context-actor reasoning should matter.

Usage::

    python tools/benchmarks/benchmark_relations.py [--world default|relation] [--output DIR] [--max-iter N]
        [--seeds 0 1 2 3 4] [--heads baseline actor_actor actor_context acar] [--jobs N]
        [KEY VALUE ...]

``--world relation`` trains and evaluates on the relation world (``aca_world_rel``, generated
with ``--relation --videos 300`` when missing; datasets/SYNTHETIC.md), where the indirect classes'
negatives share the positives' first-order cue and their evidence lies outside the actor's RoI
receptive field of the backbone every head gets there: SlowFast R10 with res5 undilated at
stride 16 (75 px; ``WORLDS``, put before the command line's overrides). Every head is trained once per seed (``SEED``:
initialization and data order); the table gives mean +- half the range over the seeds with the
per-seed values. It is printed as markdown and written with the raw numbers (``results.json``)
into ``--output``. The tool resumes: a finished (head, seed) keeps its ``summary.json`` and is
not retrained; an interrupted one restarts from its last checkpoint. ``--jobs N`` trains up to N
unfinished runs at a time, each in its own process, seed by seed (both heads of a seed before the
next seed), then reads every summary back into the table.

Heads ``vit_linear`` and ``vit_acar`` put the official VideoMAE linear head and the ACAR head on
the same CPU-sized VideoMAE ViT (``configs/Synthetic/vit_*_VIT_T_*``, whose every token attends to
the whole clip); the relation world's SlowFast overrides do not touch them (docs/BENCHMARKS.md,
"Relation heads on a ViT").
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
HEADS = ("baseline", "actor_actor", "actor_context", "acar", "vit_linear", "vit_acar")
# world -> (folder under --datasets, dataset prefix, make_synthetic_ava.py options, config
# overrides put before the command line's). The relation world is measured with the smallest
# backbone of the family, SlowFast R10 with res5 undilated at stride 16: a 75 px receptive field,
# so that its links (>= ROI_RF_MARGIN px from the actor's box) lie outside the actor's RoI
# receptive field (datasets/SYNTHETIC.md); R18 with dilated res5 sees 227 px, the whole frame.
WORLDS = {"default": ("aca_world", "aca_world", (), ()),
          "relation": ("aca_world_rel", "aca_world_rel", ("--relation",),
                       ("MODEL.SLOWFAST.DEPTH", "10", "MODEL.SLOWFAST.RES5_DILATION", "1",
                        "MODEL.SLOWFAST.RES5_STRIDE", "1"))}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=list(WORLDS), default="default")
    parser.add_argument("--videos", type=int, default=300,
                        help="videos of a generated relation world (20%% val)")
    parser.add_argument("--output", default="")
    parser.add_argument("--datasets", default=os.environ.get("ACAR_DATASETS", "datasets"),
                        help="dataset root holding aca_world/ (generated if missing)")
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train-one", metavar="CONFIG", default="",
                        help=argparse.SUPPRESS)  # one run of --jobs, in its own process
    parser.add_argument("--jobs", type=int, default=1,
                        help="unfinished (head, seed) runs trained at a time, one process each")
    parser.add_argument("--max-iter", type=int, default=0,
                        help="shorten the schedule (steps scale along); 0 = the configs' own")
    parser.add_argument("--maps", action="store_true",
                        help="also measure how often each trained ACAR model's relation map of a "
                             "riding passenger / listener peaks on its vehicle / board "
                             "(relation_maps.json, relation_maps.png)")
    parser.add_argument("--effective-rf", action="store_true",
                        help="also measure the effective receptive field of each trained ACAR "
                             "backbone (effective_rf.json)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args(argv)


def head_config(head: str) -> Path:
    """The head's config under configs/Synthetic/: ``{head}_SLOWFAST_R18_*`` (``vit_*``: ``{head}_VIT_T_*``)."""
    backbone = "VIT_T" if head.startswith("vit_") else "SLOWFAST_R18"
    (path,) = sorted((REPO / "configs" / "Synthetic").glob(f"{head}_{backbone}_*_aca_world.yaml"))
    return path


def build_cfg(config: Path, output: Path, max_iter: int, opts: list, seed: int,
              prefix: str = "aca_world"):
    from acar_d2.engine import setup_cfg

    cfg = setup_cfg(str(config), opts, freeze=False)
    cfg.DATASETS.TRAIN = (f"{prefix}_train",)
    cfg.DATASETS.TEST = (f"{prefix}_val",)
    if max_iter > 0:
        # Keep the schedule's shape: warm-up and decay points scale with the length.
        scale = max_iter / cfg.SOLVER.MAX_ITER
        cfg.SOLVER.STEPS = tuple(int(s * scale) for s in cfg.SOLVER.STEPS)
        cfg.SOLVER.WARMUP_ITERS = int(cfg.SOLVER.WARMUP_ITERS * scale)
        cfg.SOLVER.MAX_ITER = max_iter
    cfg.TEST.EVAL_PERIOD = 0  # one evaluation, at the end
    cfg.SOLVER.CHECKPOINT_PERIOD = cfg.SOLVER.MAX_ITER
    cfg.OUTPUT_DIR = str(output)
    cfg.SEED = seed  # for a given seed every head sees the same clips in the same order
    cfg.freeze()
    return cfg


def run_head(cfg) -> dict:
    """Train (resuming from the run folder's last checkpoint) and evaluate one head; the summary
    is written to ``summary.json`` beside the run's ``config.yaml``."""
    from detectron2.data import MetadataCatalog
    from detectron2.utils.env import seed_all_rng

    from acar_d2.engine import Trainer
    from ava_eval.reporting import summarize_frame_map

    out = Path(cfg.OUTPUT_DIR)
    if (out / "summary.json").is_file():
        return json.loads((out / "summary.json").read_text())
    seed_all_rng(cfg.SEED)
    start = time.time()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=True)
    (out / "config.yaml").write_text(cfg.dump())  # the run's full config beside its outputs
    trainer.train()
    head_params = sum(p.numel() for p in trainer.model.roi_heads.parameters())
    results = trainer._last_eval_results
    meta = MetadataCatalog.get(cfg.DATASETS.TEST[0])
    summary = summarize_frame_map(results, list(meta.action_classes))
    summary.update(minutes=(time.time() - start) / 60, head_params=head_params)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def train_parallel(cfgs: list, jobs: int) -> None:
    """
    Train the unfinished runs of ``cfgs`` (:func:`run_head`, no ``summary.json`` yet), up to ``jobs``
    at a time, each in a fresh Python process (``--train-one``: this tool on the run's
    ``run_config.yaml``; a fresh process, not a fork, so that no thread pool of this one is
    copied half-locked), started in the given order. Raises RuntimeError naming the run folders
    whose process failed.
    """
    import subprocess
    import sys

    pending = [c for c in cfgs if not (Path(c.OUTPUT_DIR) / "summary.json").is_file()]
    running, failed = [], []
    while pending or running:
        while pending and len(running) < jobs:
            cfg = pending.pop(0)
            folder = Path(cfg.OUTPUT_DIR)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "run_config.yaml").write_text(cfg.dump())
            cmd = [sys.executable, str(Path(__file__).resolve()), "--train-one",
                   str(folder / "run_config.yaml")]
            running.append((subprocess.Popen(cmd), cfg.OUTPUT_DIR))
        time.sleep(0.2)
        for proc, folder in [r for r in running if r[0].poll() is not None]:
            running.remove((proc, folder))
            if proc.returncode != 0:
                failed.append(f"{folder} (exit code {proc.returncode}; its traceback is in the output above)")
    if failed:
        raise RuntimeError("benchmark_relations: runs failed: " + ", ".join(failed))


def train_one(config_file: str) -> None:
    """``--train-one``: :func:`run_head` on a full config written by :func:`train_parallel`."""
    from detectron2.utils.logger import setup_logger

    from acar_d2.engine import setup_cfg

    setup_logger(name="detectron2")
    run_head(setup_cfg(config_file, []))


def effective_receptive_field(cfg, weights: str, clips: int = 8, radii=(0, 1, 2, 3, 4)) -> dict:
    """
    Effective receptive field of the trained backbone (Luo et al., NeurIPS 2016): the gradient
    of one res5 unit (the slow + fast channels at the centre cell, summed) with respect to the
    input clip, on validation clips; returns the share of |gradient| (summed over channels and
    frames) inside squares of +-r cells (stride 16 px) around the unit's cell, averaged over
    ``clips`` clips. The theoretical receptive field is the whole frame (datasets/SYNTHETIC.md).
    """
    import torch
    from detectron2.modeling import build_model

    from acar_d2.checkpoint import ACARCheckpointer
    from acar_d2.engine import Trainer

    model = build_model(cfg)
    ACARCheckpointer(model).load(weights)
    model.eval()
    loader = Trainer.build_test_loader(cfg, cfg.DATASETS.TEST[0])
    shares = {r: [] for r in radii}
    for i, batch in enumerate(loader):
        if i >= clips:
            break
        clip = batch[0]["clip"][None].float().requires_grad_(True)
        feats = model.backbone(clip)
        h, w = feats["slow"].shape[-2:]
        cy, cx = h // 2, w // 2
        unit = sum(f[0, :, :, cy, cx].sum() for f in feats.values())
        (grad,) = torch.autograd.grad(unit, clip)
        g = grad[0].abs().sum(dim=(0, 1))  # (H, W)
        total = float(g.sum())
        for r in radii:
            y0, x0 = max(0, (cy - r) * 16), max(0, (cx - r) * 16)
            shares[r].append(float(g[y0:(cy + r + 1) * 16, x0:(cx + r + 1) * 16].sum()) / total)
    return {r: sum(v) / len(v) for r, v in shares.items()}


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def linking_object(actor: dict, snap: dict):
    """(class, box) of the object that links a positive indirect actor to the other actor: the
    vehicle a riding passenger sits in, the board a listener faces; None for other actors."""
    if "ride" in actor["labels"]:
        vid = actor["seat"]["vehicle"]
        return "ride", next(v["box"] for v in snap["vehicles"] if v["id"] == vid)
    if "listen" in actor["labels"]:
        me = f"person:{actor['person_id']}"
        board = next(o for s, p, o in snap["relations"] if s == me and p == "faces")
        return "listen", next(b["box"] for b in snap["boards"] if f"board:{b['id']}" == board)
    return None


def partner_of(actor: dict, snap: dict):
    """The other actor of a positive indirect actor: the driver of the passenger's vehicle, the
    presenter of the listener's board; None otherwise."""
    if "ride" in actor["labels"]:
        vid = actor["seat"]["vehicle"]
        return next((b for b in snap["actors"] if b["seat"] and b["seat"]["vehicle"] == vid
                     and b["seat"]["role"] == "driver"), None)
    if "listen" in actor["labels"]:
        me = f"person:{actor['person_id']}"
        board = next(o for s, p, o in snap["relations"] if s == me and p == "faces")
        return next((b for b in snap["actors"] if [f"person:{b['person_id']}", "points_at", board]
                     in snap["relations"]), None)
    return None


def relation_map_rate(cfg, weights: str, world_dir: Path, figure: Optional[Path] = None,
                      max_frames: int = 0) -> dict:
    """
    How often the relation map of a positive indirect actor (ride / listen, matched to a detected
    box at IoU >= 0.5) peaks inside its linking object (the passenger's vehicle, the listener's
    board), against chance: the share of the actor's relation-grid cells whose centre lies in that
    box (a peak placed on a random cell); and how often its largest actor weight on another actor
    is on its partner (the driver / presenter, :func:`partner_of`, matched at IoU >= 0.5) against
    chance, 1 / (number of other actors). ``figure``: a PNG of the first positives' maps.
    """
    import numpy as np
    import torch
    from detectron2.modeling import build_model

    from acar_d2.checkpoint import ACARCheckpointer
    from acar_d2.engine import Trainer
    from acar_d2.modeling import RelationRecorder
    from PIL import Image

    world = json.loads((world_dir / "world.json").read_text())
    model = build_model(cfg)
    ACARCheckpointer(model).load(weights)
    model.eval()
    loader = Trainer.build_test_loader(cfg, cfg.DATASETS.TEST[0])
    hits, chance, panels, partner_hits, partner_chance = {}, {}, [], {}, {}
    with torch.no_grad(), RelationRecorder(model) as recorder:
        for i, batch in enumerate(loader):
            if max_frames and i >= max_frames:
                break
            (inputs,) = batch
            snap = world["scenes"][inputs["video_id"]][str(int(inputs["timestamp"]))]
            inst = model(batch)[0]["instances"].to("cpu")
            (maps,) = recorder.maps
            recorder.maps.clear()
            boxes = inst.pred_boxes.tensor.numpy()
            for actor in snap["actors"]:
                link = linking_object(actor, snap)
                if link is None or not len(boxes):
                    continue
                ious = [_iou(b, actor["box"]) for b in boxes]
                k = int(np.argmax(ious))
                if ious[k] < 0.5:
                    continue
                rm = maps[k]
                cls, box = link
                hits.setdefault(cls, []).append(rm.peak_in_box(box))
                x0, y0, sx, sy = rm.grid
                h, w = rm.context_map.shape
                xs, ys = x0 + sx * np.arange(w), y0 + sy * np.arange(h)
                inside = ((xs[None] >= box[0]) & (xs[None] <= box[2])
                          & (ys[:, None] >= box[1]) & (ys[:, None] <= box[3]))
                chance.setdefault(cls, []).append(float(inside.mean()))
                partner = partner_of(actor, snap)
                if partner is not None and len(boxes) > 1:
                    pious = [_iou(b, partner["box"]) for b in boxes]
                    p = int(np.argmax(pious))
                    if pious[p] >= 0.5 and p != k:
                        w = rm.actor_weights.copy()
                        w[k] = -1.0  # the largest weight on ANOTHER actor
                        partner_hits.setdefault(cls, []).append(int(np.argmax(w)) == p)
                        partner_chance.setdefault(cls, []).append(1.0 / (len(boxes) - 1))
                if figure is not None and len(panels) < 6:
                    vid, t = inputs["video_id"], int(inputs["timestamp"])
                    path = world_dir / "frames" / vid / f"{vid}_{t * world['fps'] + 1:06d}.jpg"
                    panels.append((cls, np.asarray(Image.open(path).convert("RGB")), rm, boxes,
                                   box))
    if figure is not None and panels:
        _write_figure(figure, panels)
    out = {}
    for cls in hits:
        out[cls] = {"actors": len(hits[cls]), "peak_in_link": float(np.mean(hits[cls])),
                    "chance": float(np.mean(chance[cls])),
                    "partner_actors": len(partner_hits.get(cls, [])),
                    "top_weight_on_partner": float(np.mean(partner_hits.get(cls, [np.nan]))),
                    "partner_chance": float(np.mean(partner_chance.get(cls, [np.nan])))}
    return out


def _write_figure(path: Path, panels: list) -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    from acar_d2.utils.visualizer import draw_relation_map

    tiles = []
    for cls, frame, rm, boxes, link in panels:
        img = draw_relation_map(frame, rm, boxes)
        H, W = img.shape[:2]
        pil = Image.fromarray(img).resize((W * 3, H * 3), Image.NEAREST)
        d = ImageDraw.Draw(pil)
        d.rectangle([c * 3 for c in link], outline=(0, 200, 255), width=2)
        x1, y1, x2, y2 = boxes[rm.actor_index]
        d.rectangle([x1 * 3, y1 * 3, x2 * 3, y2 * 3], outline=(0, 255, 0), width=2)
        d.text((4, 4), cls, fill=(0, 0, 0))
        tiles.append(pil)
    W3, H3 = tiles[0].size
    sheet = Image.new("RGB", (W3 * 3, H3 * ((len(tiles) + 2) // 3)), (255, 255, 255))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % 3) * W3, (i // 3) * H3))
    sheet.save(path)


def indirect_candidates(snap: dict):
    """The relation world's hard cases of a key frame: (class, actor, positive) for every convoy
    bus passenger (ride: its own driver is there, or only another vehicle's driver ahead) and
    every board-pair listener facing a pointing presenter (listen: at its board, or at the other
    board). Convoy buses have >= 4 seats; board pairs are two boards 17-22 px apart on a row."""
    vehicles = {v["id"]: v for v in snap["vehicles"]}
    for a in snap["actors"]:
        seat = a["seat"]
        if seat and seat["role"] == "passenger" and len(vehicles[seat["vehicle"]]["seat_xs"]) >= 4:
            yield "ride", a, "ride" in a["labels"]
        me = f"person:{a['person_id']}"
        if any(s == me and p == "faces" for s, p, o in snap["relations"]):
            boards = sorted((b["box"] for b in snap["boards"]
                             if abs(b["ground_y"] - a["y"]) <= 6), key=lambda b: b[0])
            pointing = [b for b in snap["actors"] if b["arm"] == "point"
                        and abs(b["y"] - a["y"]) <= 6 and b["facing"] == -a["facing"]]
            if len(boards) == 2 and 17 <= boards[1][0] - boards[0][2] <= 22 and pointing:
                yield "listen", a, "listen" in a["labels"]


def _auc(pos: list, neg: list) -> float:
    """P(score of a positive > score of a negative), ties count half."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def hard_negative_separation(predictions_csv: Path, world: dict, class_ids: dict) -> dict:
    """
    How well a trained head's scores separate the positives of ride / listen from their hard
    negatives (same first-order cue, relation broken; :func:`indirect_candidates`), on the val
    detections of ``predictions_csv`` (AVA CSV; each GT actor matched to the detection of highest
    IoU >= 0.5): the AUC of the class score, overall and on key frames whose row is the only one
    of its kind (where a head that counts drivers / presenters in the frame could tell them apart).
    """
    import csv as _csv

    det = {}
    W, H = world["width"], world["height"]
    with open(predictions_csv) as f:
        for row in _csv.reader(f):
            key = (row[0], int(row[1]))
            box = tuple(round(float(v), 3) for v in row[2:6])
            det.setdefault(key, {}).setdefault(box, {})[int(row[6])] = float(row[7])
    scores = {}
    for vid in world["splits"]["val"]:
        for t, snap in world["scenes"][vid].items():
            boxes = det.get((vid, int(t)), {})
            cands = list(indirect_candidates(snap))
            for cls, a, positive in cands:
                gt = [a["box"][0] / W, a["box"][1] / H, a["box"][2] / W, a["box"][3] / H]
                best = max(boxes, key=lambda b: _iou(b, gt), default=None)
                if best is None or _iou(best, gt) < 0.5:
                    continue
                single = sum(1 for c, b, _ in cands if c == cls
                             and abs(b["y"] - a["y"]) > 6) == 0  # no other row of its kind
                s = boxes[best].get(class_ids[cls], 0.0)
                for subset in ("all", "single row") if single else ("all",):
                    scores.setdefault((cls, subset), ([], []))[0 if positive else 1].append(s)
    return {f"{cls} ({subset})": {"auc": _auc(*v), "positives": len(v[0]), "hard_negatives": len(v[1])}
            for (cls, subset), v in sorted(scores.items())}


def format_separation(sep: dict) -> str:
    """sep: head -> per-seed dicts of :func:`hard_negative_separation`; AUC mean +- half range."""
    keys = list(next(iter(sep.values()))[0])
    lines = ["| head | " + " | ".join(f"AUC {k}" for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for head, runs in sep.items():
        lines.append(f"| {head} | " + " | ".join(
            _mean_spread([100 * r[k]["auc"] for r in runs]) for k in keys) + " |")
    n = next(iter(sep.values()))[0]
    lines.append("\npositives / hard negatives per seed: " + ", ".join(
        f"{k} {n[k]['positives']}/{n[k]['hard_negatives']}" for k in keys))
    return "\n".join(lines)


def format_map_rates(maps: dict) -> str:
    """maps: seed -> class -> {actors, peak_in_link, chance}; a markdown table per class."""
    lines = ["| class | actors per seed | relation-map peak on the linking object (per seed) "
             "| chance | largest actor weight on the partner (per seed) | chance |",
             "|---|---|---|---|---|---|"]
    for cls in ("ride", "listen"):
        runs = [m[cls] for m in maps.values() if cls in m]
        if not runs:
            continue
        rate = [100 * r["peak_in_link"] for r in runs]
        lines.append(f"| {cls} | {runs[0]['actors']} | {_mean_spread(rate)} % ("
                     + " / ".join(f"{v:.0f}" for v in rate) + f") | "
                     f"{100 * sum(r['chance'] for r in runs) / len(runs):.0f} % | "
                     + (f"{_mean_spread([100 * r['top_weight_on_partner'] for r in runs])} % ("
                        + " / ".join(f"{100 * r['top_weight_on_partner']:.0f}" for r in runs)
                        + f") | {100 * sum(r['partner_chance'] for r in runs) / len(runs):.0f} % |"
                        if "top_weight_on_partner" in runs[0] else "n/a | n/a |"))
    return "\n".join(lines)


def _mean_spread(values: list) -> str:
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    return f"{mean:.2f} ± {(max(values) - min(values)) / 2:.2f}"


def format_table(rows: dict, indirect: list, groups: list) -> str:
    """rows: head -> list of per-seed summaries. Cells are mean ± half-range over seeds."""
    cols = ["head", "head params", "seeds", "frame-mAP"] + groups + [
        "indirect (" + ", ".join(indirect) + ")", "train min/run"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for head, runs in rows.items():
        ind = [sum(r["per_class"][n] for n in indirect) / len(indirect) for r in runs]
        cells = [head, f"{runs[0]['head_params']:,}", str(len(runs)),
                 _mean_spread([r["frame_mAP"] for r in runs])]
        cells += [_mean_spread([r["per_group"][g] for r in runs if g in r["per_group"]])
                  for g in groups]
        cells += [_mean_spread(ind) + " (" + " / ".join(f"{v:.1f}" for v in ind) + ")",
                  f"{sum(r['minutes'] for r in runs) / len(runs):.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_indirect_std(rows: dict, indirect: list) -> str:
    """rows: head -> per-seed summaries. One line per head: the indirect AP's mean ± sample standard
    deviation over the seeds, and each indirect class's mean and per-seed values."""
    import statistics

    lines = []
    for head, runs in rows.items():
        ind = [sum(r["per_class"][n] for n in indirect) / len(indirect) for r in runs]
        std = statistics.stdev(ind) if len(ind) > 1 else 0.0
        per_class = "; ".join(
            f"{n} {statistics.mean(r['per_class'][n] for r in runs):.1f} ("
            + " / ".join(f"{r['per_class'][n]:.1f}" for r in runs) + ")" for n in indirect)
        lines.append(f"{head}: indirect {statistics.mean(ind):.2f} ± {std:.2f} (std, {len(ind)} seeds); {per_class}")
    return "\n".join(lines)


def _cached(path: Path, compute) -> dict:
    """``compute()`` once per run folder: kept in ``path`` and read back by a later call (the
    measurements of a trained model do not change; a resumed benchmark does not redo them)."""
    if path.is_file():
        return {(int(k) if k.lstrip("-").isdigit() else k): v
                for k, v in json.loads(path.read_text()).items()}
    value = compute()
    path.write_text(json.dumps(value, indent=2))
    return value


def main(argv=None) -> dict:
    """One benchmark per output folder: a second one on it is refused at once (its
    ``.acar_d2.lock``, docs/SAFETY.md); a stopped one is resumed by running it again."""
    args = parse_args(argv)
    if args.train_one:  # a run of --jobs: the parent holds the output folder's lock
        train_one(args.train_one)
        return {}
    root = Path(args.datasets).expanduser().resolve()
    os.environ["ACAR_DATASETS"] = str(root)  # read by acar_d2's builtin registration at import
    from acar_d2.utils.output_lock import hold_output_folder

    output = Path(args.output or f"output/benchmark_relations_{args.world}").resolve()
    with hold_output_folder(str(output)):
        return benchmark(args)


def benchmark(args) -> dict:
    root = Path(args.datasets).expanduser().resolve()  # ACAR_DATASETS, set by main()
    folder, prefix, gen_opts, world_opts = WORLDS[args.world]
    opts = list(world_opts) + list(args.opts)
    world = root / folder
    if not (world / "world.json").is_file():
        import subprocess
        import sys

        extra = ["--videos", str(args.videos)] if args.world == "relation" else []
        subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic_ava.py"), "--out",
                        str(world), *gen_opts, *extra], check=True)
    from detectron2.utils.logger import setup_logger

    setup_logger(name="detectron2")
    classes = json.loads((world / "world.json").read_text())["classes"]
    indirect = [c["name"] for c in classes if c.get("indirect")]
    groups = ["pose", "person_object", "person_person"]

    output = Path(args.output or f"output/benchmark_relations_{args.world}").resolve()
    output.mkdir(parents=True, exist_ok=True)
    cfgs = {(head, seed): build_cfg(head_config(head), output / f"{head}_seed{seed}",
                                    args.max_iter, opts, seed, prefix)
            for seed in args.seeds for head in args.heads}
    if args.jobs > 1:
        train_parallel(list(cfgs.values()), args.jobs)
    rows = {}
    for head in args.heads:
        rows[head] = []
        for seed in args.seeds:
            rows[head].append(run_head(cfgs[head, seed]))
            ind = [rows[head][-1]["per_class"][n] for n in indirect]
            print(f"[benchmark_relations] {head} seed {seed}: frame-mAP "
                  f"{rows[head][-1]['frame_mAP']:.2f}, indirect {sum(ind) / len(ind):.2f}")
            (output / "partial_results.json").write_text(json.dumps(rows, indent=2))
    table = format_table(rows, indirect, groups) + "\n\n" + format_indirect_std(rows, indirect)
    ids = {c["name"]: c["id"] for c in classes}
    world_info = json.loads((world / "world.json").read_text())
    if world_info.get("relation"):
        sep = {head: [hard_negative_separation(
            output / f"{head}_seed{seed}" / "inference" / f"{prefix}_val" / f"predictions_{prefix}_val.csv",
            world_info, ids) for seed in args.seeds] for head in args.heads}
        (output / "hard_negatives.json").write_text(json.dumps(sep, indent=2))
        table += "\n\n" + format_separation(sep)
    # the trained ACAR model of each seed: (seed, config, weights)
    acar_runs = [(seed, build_cfg(head_config("acar"), output / f"acar_seed{seed}", args.max_iter,
                                  opts, seed, prefix),
                  str(output / f"acar_seed{seed}" / "model_final.pth")) for seed in args.seeds]
    if args.maps and "acar" in args.heads:
        maps = {}
        for seed, cfg, weights in acar_runs:
            fig = output / "relation_maps.png" if seed == args.seeds[0] else None
            maps[seed] = _cached(Path(cfg.OUTPUT_DIR) / "relation_maps.json",
                                 lambda: relation_map_rate(cfg, weights, world, fig))
        (output / "relation_maps.json").write_text(json.dumps(maps, indent=2))
        table += "\n\n" + format_map_rates(maps)
    if args.effective_rf and "acar" in args.heads:
        erf = {seed: _cached(Path(cfg.OUTPUT_DIR) / "effective_rf.json",
                             lambda: effective_receptive_field(cfg, weights))
               for seed, cfg, weights in acar_runs}
        (output / "effective_rf.json").write_text(json.dumps(erf, indent=2))
        mean = {r: sum(e[r] for e in erf.values()) / len(erf) for r in next(iter(erf.values()))}
        table += ("\n\nEffective receptive field of the trained ACAR backbones (share of the "
                  "input gradient of a centre res5 unit within +-r cells of 16 px): "
                  + ", ".join(f"r={r}: {v:.2f}" for r, v in mean.items()))
    print(table)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(rows, indent=2))
    (output / "results.md").write_text(table + "\n")
    return rows


if __name__ == "__main__":
    main()
