#!/usr/bin/env python
"""
Long-term feature banks: what the bank costs the data loader, and what it buys on the synthetic
world's long-range class.

Part 1 (``--part loader``): milliseconds per clip of ``ClipDatasetMapper`` (the baseline) against
``FeatureBankDatasetMapper`` on the same key frames, side by side, and of the bank window read
alone at AVA sizes (ACFB: 19 times x 5 actors x 512 x 10 x 10 fp16; LFB: 60 times x 5 x 2304),
from memory-mapped per-video files (warm page cache: the bank is read again and again).

Part 2 (``--part synthetic``): on the ``--long-range`` world (datasets/SYNTHETIC.md, class
``left_behind`` whose evidence lies >= 2 s before the key frame), per seed: train ACAR without a
bank from scratch (``--max-iter``), extract its ACFB and LFB banks (tools/extract_feature_bank.py),
then compare three heads trained on the same data, seed and schedule (``configs/Synthetic/
{acar,acfb,lfb}_*``, bank window 19 s): by default all three start from that ACAR checkpoint and
train ``--finetune-iter`` iterations (the no-bank ACAR included), the stand-in for the paper's
common Kinetics initialisation; ``--finetune-iter 0`` trains ACFB and LFB from scratch instead.
Reports frame-mAP, the AP of ``left_behind`` (all its key frames, and only t >= 3 s where the clip
holds no evidence at all) as mean +- half-range over the seeds, per-seed numbers, and whether ACFB
beats ACAR by more than the seed spread and LFB sits between them or below. Every run keeps its
summary in its folder: a stopped benchmark run again continues where it stopped.

    python tools/benchmarks/benchmark_feature_bank.py --part loader
    python tools/benchmarks/benchmark_feature_bank.py --part synthetic --seeds 0 1 2 --max-iter 400 --finetune-iter 200

``--heads`` picks the compared heads (default ``acar acfb lfb``; ``acfb_place`` = ACFB with
``MODEL.FEATURE_BANK.PLACE_ENCODING box_centre``); finished runs of a seed are read back, so adding
a head to a finished benchmark trains only that head. ``tools/benchmarks/probe_feature_bank.py``
reads a finished seed folder and says where the long-range evidence goes.

``--bank-ablation`` evaluates every trained ACFB / LFB model a second time with the features of
its bank window set to zero (same boxes, same key frames): if ``left_behind`` AP does not move, the
head does not read the evidence its bank holds.

Results: a markdown table on stdout and ``results.json`` / ``results.md`` in ``--output``.
"""
import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
LR_CLASS = "left_behind"
LR_WINDOW = 19
PREFIX = "aca_world_lr"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["loader", "synthetic", "all"], default="all")
    p.add_argument("--output", default="output/benchmark_feature_bank")
    p.add_argument("--datasets", default=os.environ.get("ACAR_DATASETS", "datasets"),
                   help="root holding aca_world_lr/ (generated with --long-range if missing)")
    p.add_argument("--videos", type=int, default=60, help="videos of a generated world")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-iter", type=int, default=0,
                   help="iterations of the from-scratch runs (0 = the configs' 1.5k)")
    p.add_argument("--finetune-iter", type=int, default=200,
                   help="iterations of the three compared heads, all started from the seed's ACAR "
                        "checkpoint (0 = ACFB/LFB from scratch instead)")
    p.add_argument("--clips", type=int, default=60, help="part 1: key frames timed per loader")
    p.add_argument("--heads", nargs="+", default=["acar", "acfb", "lfb"],
                   choices=["acar", "acfb", "lfb", "acfb_place"],
                   help="part 2: the compared heads (finished runs are read back, not retrained); "
                        "acfb_place = ACFB with MODEL.FEATURE_BANK.PLACE_ENCODING box_centre")
    p.add_argument("--bank-ablation", action="store_true",
                   help="part 2: also evaluate each trained ACFB / LFB model with its bank "
                        "features zeroed (does the head read its bank at all?)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return p.parse_args(argv)


def ensure_world(root: Path, videos: int) -> Path:
    world = root / "aca_world_lr"
    if not (world / "world.json").is_file():
        from acar_d2.data.synthetic import write_world

        write_world(str(world), num_videos=videos, seed=0, write_videos=False, long_range=True)
    info = json.loads((world / "world.json").read_text())
    if not info.get("long_range"):
        raise ValueError(f"{world} is not a --long-range world (no class {LR_CLASS})")
    return world


def register_world(world: Path, prefix: str = PREFIX) -> list:
    """Register ``{prefix}_{train,val}`` with the option world's 11 classes; returns the names."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from acar_d2.data.datasets.aca_world import load_aca_world
    from acar_d2.data.layouts import split_file_metadata

    classes = json.loads((world / "world.json").read_text())["classes"]
    groups = {}
    for i, c in enumerate(classes):
        groups.setdefault(c["group"], []).append(i)
    ann = world / "annotations"
    for split in ("train", "val"):
        name = f"{prefix}_{split}"
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, lambda s=split: load_aca_world(str(world), s))
        MetadataCatalog.get(name).set(
            action_classes=[c["name"] for c in classes], action_ids=[c["id"] for c in classes],
            pose_class_indices=groups["pose"], class_groups=groups, evaluator_type="ava",
            first_second=0, **split_file_metadata(
                annotations=str(ann / f"{split}.csv"), label_map=str(ann / "label_map.pbtxt"),
                exclusions=str(ann / f"{split}_excluded_timestamps.csv")))
    return [f"{prefix}_train", f"{prefix}_val"]


# ------------------------------------------------------------------------------------ part 1
def _fake_bank(root: Path, videos: dict, shape: tuple, actors: int, kind: str, cfg) -> None:
    from acar_d2.data.feature_bank import RECORD_FILE, bank_compat_keys, write_video_bank

    rng = np.random.default_rng(0)
    for vid, times in videos.items():
        write_video_bank(str(root / "videos"), vid, [
            {"timestamp": t, "features": rng.standard_normal((actors, *shape)).astype(np.float16),
             "valid_sizes": np.tile(shape[1:], (actors, 1)), "boxes": np.zeros((actors, 4)),
             "scores": np.ones(actors)} for t in times])
    (root / RECORD_FILE).write_text(json.dumps({
        "format": 1, "kind": kind, "entry_shape": list(shape), "extractor": {},
        "compat": json.loads(json.dumps(bank_compat_keys(cfg, kind)))}))


def _ms_per_call(fn, items, repeat: int = 3) -> float:
    for x in items[:3]:
        fn(x)  # warm-up: page cache, lazy opens
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, (time.perf_counter() - t0) / len(items))
    return 1000 * best


def _ms_interleaved(fns, items, repeat: int = 5) -> list:
    """ms per call of each of ``fns`` timed alternately on every item (a shared, busy machine
    slows them alike); per function the best of ``repeat`` passes."""
    for x in items[:3]:
        for fn in fns:
            fn(x)
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        total = [0.0] * len(fns)
        for x in items:
            for i, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn(x)
                total[i] += time.perf_counter() - t0
        best = [min(b, 1000 * t / len(items)) for b, t in zip(best, total)]
    return best


def part_loader(args, world: Path, names: list) -> dict:
    from detectron2.data import DatasetCatalog

    from acar_d2.data.clip_mapper import ClipDatasetMapper
    from acar_d2.data.feature_bank import FeatureBank, FeatureBankDatasetMapper
    from acar_d2.engine import setup_cfg

    import torch

    torch.set_num_threads(1)  # as inside a DataLoader worker
    dicts = DatasetCatalog.get(names[1])[: args.clips]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = setup_cfg(str(REPO / "configs/Synthetic/acfb_SLOWFAST_R18_1.5k_aca_world.yaml"),
                        ["MODEL.DEVICE", "cpu", "DATASETS.TEST", f"('{names[1]}',)",
                         "MODEL.ACTION_HEAD.NUM_CLASSES", "11", "MODEL.FEATURE_BANK.DIR",
                         str(tmp / "syn")])
        vids = {d["video_id"]: list(range(1, 10)) for d in dicts}
        _fake_bank(tmp / "syn", vids, (32, 5, 5), 8, "acfb", cfg)  # the world's ACFB size
        base = ClipDatasetMapper(cfg, False, dataset_name=names[1])
        bank_mapper = FeatureBankDatasetMapper(cfg, False, dataset_name=names[1])
        t_base, t_bank = _ms_interleaved([base, bank_mapper], dicts)
        rows["ClipDatasetMapper (baseline)"] = (t_base, 1.0)
        rows["FeatureBankDatasetMapper (ACFB, 9-clip window, 32x5x5)"] = (t_bank, t_base / t_bank)
        # AVA sizes: one 300 s video, 5 actors per second
        # ACFB on AVA: 340x455 frames -> 256x341 clip padded to 341x341 -> 22x22 res5 (stride 16)
        # -> 20x20 after the 3x3 relation conv -> 10x10 after the 2x2 down-sampling
        for kind, shape, window in (("acfb", (512, 10, 10), 19), ("lfb", (2304, 1, 1), 60)):
            root = tmp / f"ava_{kind}"
            _fake_bank(root, {"ava_video": list(range(0, 300))}, shape, 5, kind, cfg)
            bank = FeatureBank(str(root))
            keys = list(range(30, 270, 4))
            ms = _ms_per_call(lambda t: bank.window("ava_video", t, window), keys)
            mb = window * 5 * int(np.prod(shape)) * 2 / 2**20
            rows[f"bank window alone, AVA {kind.upper()} ({window} s x 5 actors x "
                 f"{'x'.join(map(str, shape))}, {mb:.1f} MiB)"] = (ms, t_base / ms)
    lines = ["| loader (1 process, 1 thread, warm cache) | ms / clip | ratio (baseline ms / ms) | share of a "
             "baseline clip's time |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v[0]:.2f} | {v[1]:.2f}x | {100 / v[1]:.1f}% |" for k, v in rows.items()]
    table = "\n".join(lines)
    print(table)
    return {"rows": {k: {"ms": v[0], "speed_ratio": v[1]} for k, v in rows.items()},
            "table": table}


# ------------------------------------------------------------------------------------ part 2
def _cfg(config: str, output: Path, names: list, seed: int, max_iter: int, opts: list):
    from acar_d2.engine import setup_cfg

    cfg = setup_cfg(str(REPO / "configs/Synthetic" / config), [
        "DATASETS.TRAIN", f"('{names[0]}',)", "DATASETS.TEST", f"('{names[1]}',)",
        "MODEL.ACTION_HEAD.NUM_CLASSES", "11"] + list(opts), freeze=False)
    if max_iter > 0:
        scale = max_iter / cfg.SOLVER.MAX_ITER
        # keep the decay points' places; distinct and inside the run (tiny smoke runs drop them)
        steps = sorted({int(s * scale) for s in cfg.SOLVER.STEPS})
        cfg.SOLVER.STEPS = tuple(s for s in steps if 0 < s < max_iter)
        cfg.SOLVER.WARMUP_ITERS = int(cfg.SOLVER.WARMUP_ITERS * scale)
        cfg.SOLVER.MAX_ITER = max_iter
    cfg.TEST.EVAL_PERIOD = 0
    # a checkpoint every 500 iterations: a stopped benchmark resumes the run it was in
    cfg.SOLVER.CHECKPOINT_PERIOD = min(500, cfg.SOLVER.MAX_ITER)
    cfg.OUTPUT_DIR = str(output)
    cfg.SEED = seed
    return cfg


SUMMARY = "benchmark_summary.json"


def train_and_eval(cfg) -> dict:
    """Train + evaluate one run; its summary is kept in ``OUTPUT_DIR/benchmark_summary.json``.
    Run again (after a stop): a finished run is read back, not trained again; an interrupted one
    continues from its last checkpoint (``resume_or_load(resume=True)``)."""
    from detectron2.data import MetadataCatalog
    from detectron2.utils.env import seed_all_rng

    from acar_d2.engine import Trainer
    from ava_eval.reporting import summarize_frame_map

    summary = Path(cfg.OUTPUT_DIR) / SUMMARY
    if summary.is_file():
        out = json.loads(summary.read_text())
        print(f"[benchmark_feature_bank] {cfg.OUTPUT_DIR}: finished before, read back", flush=True)
        return out
    cfg.freeze()
    seed_all_rng(cfg.SEED)
    start = time.time()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=True)
    trainer.train()
    meta = MetadataCatalog.get(cfg.DATASETS.TEST[0])
    out = summarize_frame_map(trainer._last_eval_results, list(meta.action_classes))
    out["minutes"] = (time.time() - start) / 60
    out["far_AP"] = far_ap(cfg, meta)
    summary.write_text(json.dumps(out, indent=1))
    return out


def far_ap(cfg, meta, min_t: int = 3) -> float:
    """AP of left_behind on the key frames t >= ``min_t`` only (no evidence in the clip)."""
    name = cfg.DATASETS.TEST[0]
    return _far_ap_of(Path(cfg.OUTPUT_DIR) / "inference" / name / f"predictions_{name}.csv", meta,
                      min_t)


def _far_ap_of(pred: Path, meta, min_t: int = 3) -> float:
    """AP of left_behind in the detections CSV ``pred`` on the key frames t >= ``min_t``."""
    from ava_eval.evaluate import evaluate_files

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for src in (meta.gt_csv, pred):
            with open(src, newline="") as f:
                rows = [r for r in csv.reader(f) if r and int(r[1]) >= min_t]
            dst = os.path.join(tmp, Path(src).name)
            with open(dst, "w", newline="") as f:
                csv.writer(f).writerows(rows)
            paths.append(dst)
        res = evaluate_files(paths[0], paths[1], meta.label_map, meta.exclusions)
    cid = meta.action_ids[list(meta.action_classes).index(LR_CLASS)]
    return 100.0 * float(res.per_class_AP[cid])


class _ZeroedBank:
    """A test loader whose batches carry their feature-bank windows with all features zeroed."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            for x in batch:
                bank = x["feature_bank"]
                x["feature_bank"] = dict(bank, features=bank["features"].new_zeros(bank["features"].shape))
            yield batch


def bank_ablation(cfg, meta) -> dict:
    """
    Evaluate the trained model of ``cfg.OUTPUT_DIR`` (``model_final.pth``) with every bank window
    zeroed; its ``left_behind`` AP (all key frames, and t >= 3 s) next to the run's own. Kept in
    ``OUTPUT_DIR/bank_ablation.json`` (read back when present).
    """
    from detectron2.evaluation import inference_on_dataset
    from detectron2.modeling import build_model

    from acar_d2.checkpoint import ACARCheckpointer
    from acar_d2.engine import Trainer
    from ava_eval.reporting import summarize_frame_map

    out = Path(cfg.OUTPUT_DIR) / "bank_ablation.json"
    if out.is_file():
        return json.loads(out.read_text())
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = str(Path(cfg.OUTPUT_DIR) / "model_final.pth")
    cfg.freeze()
    model = build_model(cfg)
    ACARCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    model.eval()
    name = cfg.DATASETS.TEST[0]
    folder = Path(cfg.OUTPUT_DIR) / "inference_zeroed_bank" / name
    evaluator = Trainer.build_evaluator(cfg, name, output_folder=str(folder))
    res = inference_on_dataset(model, _ZeroedBank(Trainer.build_test_loader(cfg, name)), evaluator)
    summary = summarize_frame_map(res, list(meta.action_classes))
    far = _far_ap_of(folder / f"predictions_{name}.csv", meta)
    result = {"frame_mAP": summary["frame_mAP"], LR_CLASS: summary["per_class"][LR_CLASS],
              "far_AP": far}
    out.write_text(json.dumps(result, indent=1))
    return result


def extract(kind: str, acar_cfg, weights: str, out: Path, names: list) -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("extract_feature_bank",
                                                  REPO / "tools/extract_feature_bank.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    record = out / "bank_record.json"
    if record.is_file() and not (out / "videos").is_dir():
        raise FileNotFoundError(f"{record} without its videos/ folder")
    cfg_file = out.parent / f"{out.name}_extractor.yaml"
    cfg = acar_cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = weights
    cfg_file.write_text(cfg.dump())
    tool.main(tool.argument_parser().parse_args(
        ["--config-file", str(cfg_file), "--datasets", *names, "--kind", kind,
         "--output", str(out)]))
    return json.loads((out / "bank_record.json").read_text())["extractor"]["weights_sha256"]


def _stat(values: list) -> tuple:
    return float(np.mean(values)), float((max(values) - min(values)) / 2)


def format_results(rows: dict) -> str:
    """rows: head -> per-seed summaries. Mean +- half-range over seeds, then the verdicts."""
    lines = ["| head | seeds | frame-mAP | left_behind AP | left_behind AP (t >= 3 s) | train min/run |",
             "|---|---:|---:|---:|---:|---:|"]
    stats, fars = {}, {}
    for head, runs in rows.items():
        m = _stat([r["frame_mAP"] for r in runs])
        lb = _stat([r["per_class"].get(LR_CLASS, float("nan")) for r in runs])
        far = _stat([r["far_AP"] for r in runs])
        stats[head], fars[head] = lb, far
        mins = sum(r["minutes"] for r in runs) / len(runs)
        lines.append(f"| {head} | {len(runs)} | {m[0]:.2f} ± {m[1]:.2f} | {lb[0]:.2f} ± {lb[1]:.2f} "
                     f"| {far[0]:.2f} ± {far[1]:.2f} | {mins:.1f} |")
    for head, runs in rows.items():
        per = ", ".join(f"{r['frame_mAP']:.2f}/{r['per_class'].get(LR_CLASS, float('nan')):.2f}"
                        for r in runs)
        lines.append(f"\n{head} per seed (frame-mAP/left_behind): {per}")
    if "acar" in stats:
        lines.append("")
    for head in [h for h in stats if h.startswith("acfb") and "acar" in stats]:
        gain = stats[head][0] - stats["acar"][0]
        spread = max(stats[head][1], stats["acar"][1])
        far_gain = fars[head][0] - fars["acar"][0]
        far_spread = max(fars[head][1], fars["acar"][1])
        lines.append(f"{head} - ACAR on left_behind: {gain:+.2f} (seed spread {spread:.2f}): "
                     f"{'met' if gain > spread else 'NOT met'}; t >= 3 s: {far_gain:+.2f} (spread "
                     f"{far_spread:.2f}, claim >= +5 beyond it: "
                     f"{'met' if far_gain >= 5 and far_gain > far_spread else 'NOT met'})")
    if {"acar", "acfb", "lfb"} <= set(stats):
        lfb = stats["lfb"][0]
        ok = lfb <= stats["acfb"][0]
        lines.append(f"LFB {lfb:.2f} between ACAR {stats['acar'][0]:.2f} and ACFB "
                     f"{stats['acfb'][0]:.2f} or below: {'met' if ok else 'NOT met'}")
    return "\n".join(lines)


CONFIGS = {"acar": "acar_SLOWFAST_R18_1.5k_aca_world.yaml",
           "acfb": "acfb_SLOWFAST_R18_1.5k_aca_world.yaml",
           "lfb": "lfb_SLOWFAST_R18_1.5k_aca_world.yaml"}
# The compared heads (--heads): name -> (config of CONFIGS, extra overrides). "acfb_place": ACFB
# whose bank attention also compares box centres (docs/FEATURE_BANKS.md "Where the long-range
# evidence goes").
HEADS = {"acar": ("acar", []), "acfb": ("acfb", []), "lfb": ("lfb", []),
         "acfb_place": ("acfb", ["MODEL.FEATURE_BANK.PLACE_ENCODING", "box_centre"])}


def format_ablation(rows: dict) -> str:
    """The bank heads' left_behind AP with their bank and with it zeroed, per seed."""
    lines = ["| head | left_behind AP, bank | zeroed bank | change | t >= 3 s: bank | zeroed | per seed: bank / zeroed |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for head in [h for h in rows if h != "acar"]:
        runs = [r for r in rows[head] if "zeroed_bank" in r]
        if not runs:
            continue
        a = [r["per_class"][LR_CLASS] for r in runs]
        z = [r["zeroed_bank"][LR_CLASS] for r in runs]
        fa = [r["far_AP"] for r in runs]
        fz = [r["zeroed_bank"]["far_AP"] for r in runs]
        d = [x - y for x, y in zip(a, z)]
        lines.append(f"| {head} | {np.mean(a):.2f} | {np.mean(z):.2f} | {np.mean(d):+.2f} "
                     f"| {np.mean(fa):.2f} | {np.mean(fz):.2f} | "
                     + ", ".join(f"{x:.1f} / {y:.1f}" for x, y in zip(a, z)) + " |")
    return "\n".join(lines)


def head_cfg(head: str, seed_dir: Path, names: list, seed: int, iters: int, finetune: bool,
             opts: list = (), extractor_sha256: str = ""):
    """
    The config of one compared head of a seed (``seed_dir`` = ``--output``/seed<N>): a name of
    ``HEADS``; ``finetune``: started from the seed's ACAR checkpoint, else from scratch (folder:
    :func:`run_folder`). Bank heads read ``seed_dir/bank_<kind>``.
    """
    kind, extra = HEADS[head]
    opts = list(opts) + list(extra)
    if kind != "acar":
        opts += ["MODEL.FEATURE_BANK.DIR", str(seed_dir / f"bank_{kind}"),
                 "MODEL.FEATURE_BANK.EXTRACTOR_SHA256", extractor_sha256,
                 # the option world's shots last the whole 10 s video: 19 clips
                 # (t-9 .. t+9, AVA's ACFB window) reach t = 1 from every key frame
                 "MODEL.FEATURE_BANK.WINDOW_SIZE", str(LR_WINDOW)]
    if finetune:  # the bank blocks (and LFB's head) are new: not a strict load
        opts += ["MODEL.WEIGHTS", str(seed_dir / "acar" / "model_final.pth"),
                 "MODEL.WEIGHTS_STRICT", "False"]
    return _cfg(CONFIGS[kind], seed_dir / run_folder(head, iters if finetune else 0), names, seed,
                iters, opts)


def run_folder(head: str, finetune_iter: int) -> str:
    """Folder of a head's run in its seed folder: ``<head>`` from scratch, ``ft_<head>`` fine-tuned
    for the default 200 iterations, ``ft<N>_<head>`` for another ``--finetune-iter`` N (beside them)."""
    if finetune_iter <= 0:
        return head
    return f"ft_{head}" if finetune_iter == 200 else f"ft{finetune_iter}_{head}"


def part_synthetic(args, names: list, output: Path) -> dict:
    """
    Per seed: ACAR without a bank trained from scratch (``--max-iter``) = the extraction model;
    its ACFB and LFB banks; then the three heads compared. ``--finetune-iter N`` (default): all
    three start from that ACAR checkpoint (backbone and the head parts they share; the bank
    blocks are new) and train N iterations on the same schedule, the no-bank ACAR included (the
    synthetic stand-in for the paper's common Kinetics initialisation). ``--finetune-iter 0``: ACFB
    and LFB are trained from scratch for ``--max-iter`` and compared with the extraction model.
    """
    rows = {head: [] for head in args.heads}
    kinds = sorted({HEADS[h][0] for h in args.heads} - {"acar"})
    finetune = args.finetune_iter > 0
    for seed in args.seeds:
        d = output / f"seed{seed}"
        acar = _cfg(CONFIGS["acar"], d / "acar", names, seed, args.max_iter, args.opts)
        acar_cfg = acar.clone()
        base = train_and_eval(acar)
        weights = str(d / "acar" / "model_final.pth")
        shas = {kind: extract(kind, acar_cfg, weights, d / f"bank_{kind}", names) for kind in kinds}
        for head in args.heads:
            if head == "acar" and not finetune:
                rows[head].append(base)
                continue
            cfg = head_cfg(head, d, names, seed, args.finetune_iter if finetune else args.max_iter,
                           finetune, args.opts, shas.get(HEADS[head][0], ""))
            rows[head].append(train_and_eval(cfg))
            if args.bank_ablation and head != "acar":
                from detectron2.data import MetadataCatalog

                rows[head][-1]["zeroed_bank"] = bank_ablation(cfg, MetadataCatalog.get(names[1]))
        for head, runs in rows.items():
            print(f"[benchmark_feature_bank] seed {seed} {head}: frame-mAP {runs[-1]['frame_mAP']:.2f}"
                  f", {LR_CLASS} {runs[-1]['per_class'].get(LR_CLASS, float('nan')):.2f}"
                  f" (t >= 3 s: {runs[-1]['far_AP']:.2f})", flush=True)
        (output / "partial_results.json").write_text(json.dumps(rows, indent=1))
    table = format_results(rows)
    if args.bank_ablation:
        table += "\n\n" + format_ablation(rows)
    print(table)
    return {"rows": rows, "table": table, "protocol": {
        "extractor_iter": args.max_iter, "finetune_iter": args.finetune_iter,
        "window_size": LR_WINDOW, "seeds": args.seeds}}


def main(argv=None) -> dict:
    """One benchmark per output folder: a second one on it is refused at once (its
    ``.acar_d2.lock``, docs/SAFETY.md); a stopped one is resumed by running it again."""
    args = parse_args(argv)
    from acar_d2.utils.output_lock import hold_output_folder

    with hold_output_folder(str(Path(args.output).resolve())):
        return benchmark(args)


def benchmark(args) -> dict:
    root = Path(args.datasets).expanduser().resolve()
    world = ensure_world(root, args.videos)
    from detectron2.utils.logger import setup_logger

    setup_logger(name="detectron2")
    names = register_world(world)
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    results = {}
    if args.part in ("loader", "all"):
        results["loader"] = part_loader(args, world, names)
    if args.part in ("synthetic", "all"):
        results["synthetic"] = part_synthetic(args, names, output)
    (output / "results.json").write_text(json.dumps(results, indent=1))
    (output / "results.md").write_text("\n\n".join(r["table"] for r in results.values()) + "\n")
    return results


if __name__ == "__main__":
    main()
