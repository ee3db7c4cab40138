#!/usr/bin/env python
"""
Where does the long-range evidence go? Probes of one finished seed of
``benchmark_feature_bank.py --part synthetic`` (its ``seed<N>/`` folder: ``bank_acfb/`` written by
the seed's ACAR, ``ft_acfb/`` the ACFB model trained on it).

Targets: the ``left_behind`` key frames of the ``--long-range`` world at t >= 3 s (the benchmark's
"t >= 3" AP), i.e. every person of a parting scene at those key frames: positives were left by a
talk partner (evidence only at t = 1), negatives were always alone. The world's ground truth
(``world.json``: person ids and boxes per second) tells which bank entry is whose.

1. **Is the evidence in the bank?** The bank entry of key time 1 *at the actor's place* (the entry
   whose box matches the same person's t = 1 box): a logistic-regression probe trained on the
   train split's targets, AUC on val; the same with the entry of the current key time (the clip
   holds no evidence: about 0.5). Identity: AUC of "same person vs another person of the video"
   from the cosine similarity of the actor's current entry with the t = 1 entries.
2. **Does the head read it?** The ACFB model's bank attention (softmax over the window's entries,
   per location, averaged over the actor's valid cells) on the actor's own t = 1 entry, against
   the mean weight of the other entries, for positives and negatives; the cosine similarity of
   positive and negative queries; the gradient of the actor's ``left_behind`` logit reaching the
   own t = 1 entry against the other entries; the AUC of the model's own ``left_behind`` logit.

    python tools/benchmarks/probe_feature_bank.py --run output/benchmark_feature_bank/seed0 \
        --datasets datasets

Results: a markdown table on stdout and ``probe.json`` in ``--run`` (``--output`` to write it
elsewhere).
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmark_feature_bank
LR_CLASS = "left_behind"
EVIDENCE_T = 1  # the key time at which the stayer and its partner talk (datasets/SYNTHETIC.md)


# ------------------------------------------------------------------------------- ground truth
CELL_PX = 80  # the world's module cells: half the frame width (acar_d2.data.synthetic.scene.CELL_W)


def _cell(box: Sequence[float]) -> tuple:
    """(column, floor line) of the module cell a box stands in."""
    return int((box[0] + box[2]) // (2 * CELL_PX)), float(box[3])


def _alone(actor: dict, scene: dict) -> bool:
    """Nobody and nothing else (person, vehicle, board) in ``actor``'s module cell (same half of
    the frame, bottoms < 12 px apart)."""
    col, fy = _cell(actor["box"])
    others = [o["box"] for o in scene["actors"] if o["person_id"] != actor["person_id"]]
    others += [o["box"] for o in scene.get("vehicles", []) + scene.get("boards", [])]
    return not any(_cell(b)[0] == col and abs(_cell(b)[1] - fy) < 12 for b in others)


def parting_targets(world: dict, split: str, min_t: int = 3) -> List[dict]:
    """
    The ``left_behind`` positives and the always-alone negatives at key times >= ``min_t`` of
    ``split``, from ``world.json``. Negatives: persons labelled only "stand" at every key time of
    the video and alone in their module cell at every key time - the stayers of parting scenes
    without a partner (and the rare lone solo stander), whose clips are pixel-identical in
    distribution to a positive's from t = 3 on (standers of non-talking pairs, of two-person
    solo cells, beside a vehicle or a board are left out: their clip shows what is beside them).

    Returns:
        list of {"video", "t", "person_id", "label" (1 = left_behind), "box" (4,) px at t,
        "box1" (4,) px of the same person at t = 1 (None if not there)}.
    """
    out = []
    for vid in world["splits"][split]:
        seconds = world["scenes"][vid]
        labels: Dict[int, set] = {}
        for sec in seconds.values():
            for a in sec["actors"]:
                labels.setdefault(a["person_id"], set()).add(tuple(a["labels"]))
        stand_only = {pid for pid, ls in labels.items() if ls == {("stand",)}}
        for sec in seconds.values():
            stand_only -= {a["person_id"] for a in sec["actors"] if not _alone(a, sec)}
        first = {a["person_id"]: a for a in seconds.get(str(EVIDENCE_T), {}).get("actors", [])}
        for t in sorted(int(s) for s in seconds):
            if t < min_t:
                continue
            actors = seconds[str(t)]["actors"]
            for a in actors:
                pos = LR_CLASS in a["labels"]
                a1 = first.get(a["person_id"])
                neg = a["person_id"] in stand_only
                if pos or neg:
                    out.append({"video": vid, "t": t, "person_id": a["person_id"], "label": int(pos),
                                "box": a["box"], "box1": None if a1 is None else a1["box"]})
    return out


def box_iou(box: Sequence[float], boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) XYXY box with (K, 4) boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(box, dtype=np.float64)
    iw = np.clip(np.minimum(b[2], boxes[:, 2]) - np.maximum(b[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(b[3], boxes[:, 3]) - np.maximum(b[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = (b[2] - b[0]) * (b[3] - b[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def best_match(box: Optional[Sequence[float]], boxes: np.ndarray, min_iou: float = 0.5) -> Optional[int]:
    """Index of the box of ``boxes`` (K, 4) that overlaps ``box`` most, if IoU >= ``min_iou``."""
    if box is None or len(boxes) == 0:
        return None
    iou = box_iou(box, boxes)
    i = int(iou.argmax())
    return i if iou[i] >= min_iou else None


class BankIndex:
    """One video's bank read for probing: the .json index (boxes per second) + memory-mapped rows."""

    def __init__(self, bank_root: str, video_id: str):
        folder = os.path.join(bank_root, "videos")
        with open(os.path.join(folder, f"{video_id}.json")) as f:
            index = json.load(f)
        self.features = np.load(os.path.join(folder, f"{video_id}.npy"), mmap_mode="r")
        self.timestamps = [int(t) for t in index["timestamps"]]
        self.offsets = [int(o) for o in index["offsets"]]
        self.boxes = np.asarray(index["boxes"], dtype=np.float64).reshape(-1, 4)
        self.valid_sizes = np.asarray(index["valid_sizes"], dtype=np.int64).reshape(-1, 2)

    def rows_at(self, t: int) -> range:
        """Bank rows of second ``t`` (empty if the video has no entry then)."""
        if t not in self.timestamps:
            return range(0)
        i = self.timestamps.index(t)
        return range(self.offsets[i], self.offsets[i + 1])

    def own_row(self, t: int, box: Optional[Sequence[float]], min_iou: float = 0.5) -> Optional[int]:
        """The row of second ``t`` whose box is the person's ``box`` (px), or None."""
        rows = self.rows_at(t)
        j = best_match(box, self.boxes[rows.start:rows.stop], min_iou)
        return None if j is None else rows.start + j

    def entry(self, row: int) -> np.ndarray:
        """(C, h, w) float32 entry, zero outside its valid cells (as the reader pads it)."""
        e = np.asarray(self.features[row], dtype=np.float32).copy()
        vh, vw = self.valid_sizes[row]
        e[:, vh:, :] = 0
        e[:, :, vw:] = 0
        return e


def window_slot(times: Sequence[int], t_key: int, t_bank: int, offset_in_second: int) -> int:
    """
    Slot of a window (``FeatureBank.window``: entries ordered by time, each second's rows in
    bank order) holding row ``offset_in_second`` of second ``t_bank``, for key time ``t_key``.

    Args:
        times: (M,) the window's "times" (bank time - key time).
    """
    times = np.asarray(times)
    slots = np.flatnonzero(times == t_bank - t_key)
    if offset_in_second >= len(slots):
        raise ValueError(f"second {t_bank} has {len(slots)} entries in the window of key time "
                         f"{t_key}, not row {offset_in_second}")
    return int(slots[offset_in_second])


# -------------------------------------------------------------------------------- statistics
def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); nan without both classes."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 300):
    """
    L2-regularised logistic regression on standardised features (full-batch L-BFGS).

    Args:
        x: (S, D) features; y: (S,) 0/1 labels.
    Returns:
        callable (S', D) -> (S',) scores (logits).
    """
    xt = torch.as_tensor(x, dtype=torch.float64)
    mean, std = xt.mean(0), xt.std(0).clamp_min(1e-6)
    xt = (xt - mean) / std
    yt = torch.as_tensor(y, dtype=torch.float64)
    w = torch.zeros(xt.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xt @ w + b, yt) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda z: (((torch.as_tensor(z, dtype=torch.float64) - mean) / std) @ w + b).numpy()


def probe_auc(x_train, y_train, x_val, y_val, l2: float = 1e-2) -> float:
    """Val AUC of a logistic probe trained on the train split."""
    return auc(fit_logistic(np.asarray(x_train), np.asarray(y_train), l2)(np.asarray(x_val)), y_val)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


# --------------------------------------------------------------------------- 1: bank content
def content_features(bank_root: str, targets: List[dict]) -> Dict[str, np.ndarray]:
    """
    Per target: the own entry at t = 1 and at the current key time, flattened (C*h*w) and pooled
    (C, mean over valid cells); targets without a matching bank box are dropped ("kept" mask).
    """
    cache: Dict[str, BankIndex] = {}
    rows = {"t1": [], "now": [], "t1_pool": [], "now_pool": [], "label": [], "kept": []}
    for tg in targets:
        idx = cache.setdefault(tg["video"], BankIndex(bank_root, tg["video"]))
        r1, rt = idx.own_row(EVIDENCE_T, tg["box1"]), idx.own_row(tg["t"], tg["box"])
        rows["kept"].append(r1 is not None and rt is not None)
        if not rows["kept"][-1]:
            continue
        for key, r in (("t1", r1), ("now", rt)):
            e = idx.entry(r)
            vh, vw = idx.valid_sizes[r]
            rows[key].append(e.ravel())
            rows[key + "_pool"].append(e[:, :vh, :vw].mean(axis=(1, 2)))
        rows["label"].append(tg["label"])
    return {k: np.asarray(v) for k, v in rows.items()}


def identity_scores(bank_root: str, targets: List[dict]) -> tuple:
    """Cosine similarity of each val target's current entry with every t = 1 entry of its video;
    label 1 for the same person's. Returns (scores, labels)."""
    scores, labels, cache = [], [], {}
    for tg in targets:
        idx = cache.setdefault(tg["video"], BankIndex(bank_root, tg["video"]))
        rt, r1 = idx.own_row(tg["t"], tg["box"]), idx.own_row(EVIDENCE_T, tg["box1"])
        if rt is None or r1 is None:
            continue
        now = idx.entry(rt)
        for r in idx.rows_at(EVIDENCE_T):
            scores.append(cosine(now, idx.entry(r)))
            labels.append(int(r == r1))
    return np.asarray(scores), np.asarray(labels)


def part_content(bank_root: str, world: dict, min_t: int = 3) -> dict:
    """Item 1: probe AUCs of the bank content (module docstring)."""
    feats = {s: content_features(bank_root, parting_targets(world, s, min_t)) for s in ("train", "val")}
    tr, va = feats["train"], feats["val"]
    out = {"targets": {s: {"positives": int(f["label"].sum()), "negatives": int((1 - f["label"]).sum()),
                           "without_bank_box": int((~f["kept"]).sum())} for s, f in feats.items()}}
    for key in ("t1", "now", "t1_pool", "now_pool"):
        out[f"probe_auc_{key}"] = probe_auc(tr[key], tr["label"], va[key], va["label"])
    # the same probe on shuffled train labels: what chance looks like at these sizes
    rng = np.random.default_rng(0)
    out["probe_auc_t1_shuffled"] = probe_auc(tr["t1"], rng.permutation(tr["label"]), va["t1"], va["label"])
    s, y = identity_scores(bank_root, parting_targets(world, "val", min_t))
    out["identity_auc"] = auc(s, y)
    out["identity_pairs"] = {"same": int(y.sum()), "other": int((1 - y).sum())}
    return out


# ---------------------------------------------------------------------------- 2: head reading
class BankAttentionRecorder:
    """
    Forward hooks on a bank head's ``bank_blocks``: per block, the last call's attention weights
    (R, M, h, w) (``BankAttentionBlock.attention`` of the block's inputs), queries (R, C, h, w)
    and the actors' valid-cell mask (R, 1, h, w).
    """

    def __init__(self, head):
        self.blocks = list(head.bank_blocks)
        self.records: List[dict] = [{} for _ in self.blocks]
        self._handles = []

    def _hook(self, i):
        def hook(block, args, kwargs, output):
            names = ("x", "layout", "mask", "bank", "bank_mask", "place", "bank_place")
            a = dict(zip(names, args), **kwargs)
            with torch.no_grad():
                attn = block.attention(a["x"], a["layout"], a["bank"], a["bank_mask"],
                                       a.get("place"), a.get("bank_place"))
                self.records[i] = {"attn": a["layout"].to_flat(attn),
                                   "query": block.conv_q(a["x"]) * a["mask"], "mask": a["mask"]}
        return hook

    def __enter__(self):
        self._handles = [b.register_forward_hook(self._hook(i), with_kwargs=True)
                         for i, b in enumerate(self.blocks)]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []


def cell_mean(a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(R, M, h, w) weights -> (R, M) averaged over each actor's valid cells ((R, 1, h, w) mask)."""
    return (a * mask).sum((-2, -1)) / mask.sum((-2, -1)).clamp_min(1)


def load_bank_model(run_dir: Path, names: list, head: str = "ft_acfb", at_init: bool = False,
                    seed: int = 0, opts: Sequence[str] = ()):
    """
    The trained bank model of ``run_dir/head`` (``ft_acfb``, ``ft600_acfb_place``: fine-tuned from
    the seed's ACAR for 200 / 600 iterations; ``acfb``: from scratch) with the benchmark's config for it (``head_cfg``; ``opts`` = the
    benchmark's config overrides), eval mode. ``at_init``: the model where its training started
    (the weights it was started from, the new bank blocks drawn with the run's seed).
    """
    from detectron2.modeling import build_model

    from acar_d2.checkpoint import ACARCheckpointer
    from benchmark_feature_bank import HEADS, head_cfg

    match = re.fullmatch(r"ft(\d*)_(.+)", head)
    name = match.group(2) if match else head
    iters = int(match.group(1) or 200) if match else 0
    kind = HEADS[name][0]
    sha = json.loads((run_dir / f"bank_{kind}" / "bank_record.json").read_text())["extractor"]["weights_sha256"]
    cfg = head_cfg(name, run_dir, names, seed, iters, bool(match),
                   ["MODEL.DEVICE", "cpu"] + list(opts), sha)
    if not at_init:
        cfg.MODEL.WEIGHTS = str(run_dir / head / "model_final.pth")
    cfg.freeze()
    torch.manual_seed(cfg.SEED)
    model = build_model(cfg)
    ACARCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return cfg, model.eval()


def _test_boxes(model, x: dict):
    """The model's test-time actors of mapped key frame ``x``: (Instances, (R, 4) key-frame px)."""
    (props,) = model.get_proposals([x])
    boxes = props.proposal_boxes.tensor.clone()
    vh, vw = x.get("valid_size", x["clip"].shape[-2:])
    boxes[:, 0::2] *= float(x["width"]) / float(vw)
    boxes[:, 1::2] *= float(x["height"]) / float(vh)
    return props, boxes.numpy()


def _actor_stats(model, x: dict, tg: dict, lb_index: int, idx: "BankIndex") -> Optional[dict]:
    """Attention / gradient / query numbers of one target actor in its mapped key frame ``x``."""
    props, boxes = _test_boxes(model, x)
    a = best_match(tg["box"], boxes)
    r1 = idx.own_row(EVIDENCE_T, tg["box1"])
    if a is None or r1 is None:
        return None
    slot = window_slot(x["feature_bank"]["times"], tg["t"], EVIDENCE_T, r1 - idx.rows_at(EVIDENCE_T).start)
    bank = dict(x["feature_bank"])
    feats = bank["features"].float().requires_grad_(True)
    bank["features"] = feats
    with BankAttentionRecorder(model.roi_heads) as rec, torch.enable_grad():
        (logits,) = model.predict_logits([dict(x, feature_bank=bank)], [props.proposal_boxes])
        (grad,) = torch.autograd.grad(logits[a, lb_index], feats)
    out = {"label": tg["label"], "logit": float(logits[a, lb_index]), "num_entries": int(feats.shape[0])}
    t1_slots = torch.as_tensor(np.asarray(x["feature_bank"]["times"]) == EVIDENCE_T - tg["t"])
    g = grad.flatten(1).norm(dim=1)
    others = torch.ones_like(g, dtype=torch.bool)
    others[slot] = False
    out["grad_own_t1"], out["grad_other_mean"] = float(g[slot]), float(g[others].mean())
    for i, r in enumerate(rec.records):
        w = cell_mean(r["attn"][a:a + 1], r["mask"][a:a + 1])[0]
        out[f"attn{i}_own_t1"] = float(w[slot])
        out[f"attn{i}_other_mean"] = float(w[others].mean())
        out[f"attn{i}_other_max"] = float(w[others].max())
        out[f"attn{i}_own_rank"] = int((w > w[slot]).sum())
        out[f"attn{i}_own_x_uniform"] = float(w[slot]) * len(w)  # 1 = no preference
        out[f"attn{i}_t1_total"] = float(w[t1_slots].sum())  # all entries of t = 1
    q = rec.records[0]["query"][a]
    m = rec.records[0]["mask"][a]
    out["query"] = ((q * m).sum((1, 2)) / m.sum().clamp_min(1)).numpy()
    return out


def _key_frames(targets: List[dict], dataset_name: str, mapper):
    """(mapped key frame, its targets) for the targets' key frames, one key frame at a time."""
    from detectron2.data import DatasetCatalog

    by_key: Dict[tuple, List[dict]] = {}
    for tg in targets:
        by_key.setdefault((tg["video"], tg["t"]), []).append(tg)
    for d in DatasetCatalog.get(dataset_name):
        key = (d["video_id"], int(d["timestamp"]))
        if key in by_key:
            yield mapper(dict(d)), by_key[key]


class ReadOutRecorder:
    """
    Hooks along a bank head's read-out, per forward: for each bank block the aggregated values
    (``attend``, pooled over the actor's valid cells) and the block output (pooled), and the
    classifier input (``fc2``'s: [ReLU(fc1(actor)), relation feature]); each (R, D).
    """

    def __init__(self, head):
        self.head, self.seen, self._handles = head, {}, []

    def _block_hook(self, i):
        from acar_d2.modeling.roi_heads.layout import masked_mean

        def hook(block, args, kwargs, output):
            names = ("x", "layout", "mask", "bank", "bank_mask", "place", "bank_place")
            a = dict(zip(names, args), **kwargs)
            virt = block.attend(a["x"], a["layout"], a["bank"], a["bank_mask"], a.get("place"),
                                a.get("bank_place"))
            self.seen[f"block{i}_values"] = masked_mean(virt, a["mask"])
            self.seen[f"block{i}_output"] = masked_mean(output, a["mask"])
        return hook

    def __enter__(self):
        self._handles = [b.register_forward_hook(self._block_hook(i), with_kwargs=True)
                         for i, b in enumerate(self.head.bank_blocks)]
        self._handles.append(self.head.fc2.register_forward_pre_hook(
            lambda m, a: self.seen.update(classifier_input=a[0])))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()


@torch.no_grad()
def read_out_features(model, cfg, world: dict, dataset_name: str, split: str, min_t: int = 3):
    """
    The :class:`ReadOutRecorder` features of every target of ``split`` the model sees.
    Returns (dict name -> (S, D) array, (S,) labels).
    """
    from acar_d2.data.feature_bank import FeatureBankDatasetMapper

    mapper = FeatureBankDatasetMapper(cfg, False, dataset_name=dataset_name)
    feats: Dict[str, list] = {}
    labels = []
    with ReadOutRecorder(model.roi_heads) as rec:
        for x, tgs in _key_frames(parting_targets(world, split, min_t), dataset_name, mapper):
            props, boxes = _test_boxes(model, x)
            model.predict_logits([x], [props.proposal_boxes])
            for tg in tgs:
                a = best_match(tg["box"], boxes)
                if a is None:
                    continue
                for k, v in rec.seen.items():
                    feats.setdefault(k, []).append(v[a].numpy())
                labels.append(tg["label"])
    return {k: np.asarray(v) for k, v in feats.items()}, np.asarray(labels)


def part_read_out(model, cfg, world: dict, names: list, min_t: int = 3) -> dict:
    """Where along the read-out does the evidence fade? Logistic probes (train -> val) on each
    block's aggregated values and output, on the classifier input and on its relation half."""
    (tr, ytr), (va, yva) = (read_out_features(model, cfg, world, n, s, min_t)
                            for n, s in zip(names, ("train", "val")))
    half = tr["classifier_input"].shape[1] // 2
    tr["relation_feature"], va["relation_feature"] = (tr["classifier_input"][:, half:],
                                                      va["classifier_input"][:, half:])
    return {f"{k}_auc": probe_auc(tr[k], ytr, va[k], yva) for k in sorted(tr)}


def part_reading(model, cfg, bank_root: str, world: dict, names: list, min_t: int = 3,
                 limit: int = 0) -> dict:
    """Item 2: attention, gradient and query similarity of the trained bank model on val targets."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from acar_d2.data.feature_bank import FeatureBankDatasetMapper

    targets = parting_targets(world, "val", min_t)
    if limit:
        targets = targets[:limit]
    lb_index = list(MetadataCatalog.get(names[1]).action_classes).index(LR_CLASS)
    dicts = {(d["video_id"], int(d["timestamp"])): d for d in DatasetCatalog.get(names[1])}
    mapper = FeatureBankDatasetMapper(cfg, False, dataset_name=names[1])
    stats, cache, mapped = [], {}, {}
    for tg in targets:
        key = (tg["video"], tg["t"])
        if key not in dicts:
            continue
        if key not in mapped:
            mapped = {key: mapper(dict(dicts[key]))}  # one key frame at a time
        idx = cache.setdefault(tg["video"], BankIndex(bank_root, tg["video"]))
        s = _actor_stats(model, mapped[key], tg, lb_index, idx)
        if s is not None:
            stats.append(s)
    return summarize_reading(stats)


def summarize_reading(stats: List[dict]) -> dict:
    """Means per label of the per-actor numbers; query cosines; AUC of the model's own logit."""
    out = {"actors": {"positives": sum(s["label"] for s in stats),
                      "negatives": sum(1 - s["label"] for s in stats)}}
    keys = [k for k in stats[0] if k not in ("label", "query")] if stats else []
    for name, lab in (("pos", 1), ("neg", 0)):
        sub = [s for s in stats if s["label"] == lab]
        out[name] = {k: float(np.mean([s[k] for s in sub])) for k in keys} if sub else {}
    labels = [s["label"] for s in stats]
    out["logit_auc"] = auc([s["logit"] for s in stats], labels)
    out["attn0_own_t1_auc"] = auc([s["attn0_own_t1"] for s in stats], labels)
    q = np.asarray([s["query"] for s in stats], dtype=np.float64)
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    sim = qn @ qn.T
    y = np.asarray(labels, dtype=bool)
    off = ~np.eye(len(y), dtype=bool)
    out["query_cosine"] = {
        "pos_pos": float(sim[np.ix_(y, y)][off[np.ix_(y, y)]].mean()) if y.sum() > 1 else float("nan"),
        "neg_neg": float(sim[np.ix_(~y, ~y)][off[np.ix_(~y, ~y)]].mean()) if (~y).sum() > 1 else float("nan"),
        "pos_neg": float(sim[np.ix_(y, ~y)].mean()) if y.any() and (~y).any() else float("nan")}
    return out


# ------------------------------------------------------------------------------------- main
def format_probe(res: dict) -> str:
    c = res["content"]
    lines = ["| 1. bank content (val, t >= 3 s) | AUC |", "|---|---:|",
             f"| probe on the own t = 1 entry (flattened) | {c['probe_auc_t1']:.3f} |",
             f"| probe on the own t = 1 entry (pooled over cells) | {c['probe_auc_t1_pool']:.3f} |",
             f"| probe on the own entry of the current key time (flattened) | {c['probe_auc_now']:.3f} |",
             f"| probe on the own entry of the current key time (pooled) | {c['probe_auc_now_pool']:.3f} |",
             f"| probe on the own t = 1 entry, shuffled train labels | {c['probe_auc_t1_shuffled']:.3f} |",
             f"| identity: cosine(current entry, t = 1 entry), same person vs other | {c['identity_auc']:.3f} |"]
    for head, r in res.get("reading", {}).items():
        p, n = r["pos"], r["neg"]
        lines += ["", f"| 2. {head} (val, t >= 3 s) | positives | negatives |", "|---|---:|---:|",
                  f"| actors | {r['actors']['positives']} | {r['actors']['negatives']} |"]
        for i in range(4):
            if f"attn{i}_own_t1" not in p:
                break
            lines += [f"| block {i}: attention on own t = 1 entry | {p[f'attn{i}_own_t1']:.4f} | {n[f'attn{i}_own_t1']:.4f} |",
                      f"| block {i}: mean / max attention on another entry | {p[f'attn{i}_other_mean']:.4f} / {p[f'attn{i}_other_max']:.4f} | {n[f'attn{i}_other_mean']:.4f} / {n[f'attn{i}_other_max']:.4f} |",
                      f"| block {i}: entries weighted above the own t = 1 entry | {p[f'attn{i}_own_rank']:.1f} | {n[f'attn{i}_own_rank']:.1f} |",
                      f"| block {i}: own t = 1 weight x window size (1 = uniform) | {p[f'attn{i}_own_x_uniform']:.2f} | {n[f'attn{i}_own_x_uniform']:.2f} |",
                      f"| block {i}: weight on all t = 1 entries | {p[f'attn{i}_t1_total']:.3f} | {n[f'attn{i}_t1_total']:.3f} |"]
        lines += [f"| window entries | {p['num_entries']:.1f} | {n['num_entries']:.1f} |",
                  f"| gradient norm of the left_behind logit: own t = 1 entry / other entry mean | {p['grad_own_t1']:.2e} / {p['grad_other_mean']:.2e} | {n['grad_own_t1']:.2e} / {n['grad_other_mean']:.2e} |",
                  f"| query cosine (block 0, pooled): within class / across | {r['query_cosine']['pos_pos']:.4f} / {r['query_cosine']['pos_neg']:.4f} | {r['query_cosine']['neg_neg']:.4f} / {r['query_cosine']['pos_neg']:.4f} |",
                  f"| AUC pos vs neg: left_behind logit {r['logit_auc']:.3f}, attention on own t = 1 entry {r['attn0_own_t1_auc']:.3f} | | |"]
        if "classifier_input_auc" in r:
            blocks = ", ".join(f"block {i}: values {r[f'block{i}_values_auc']:.3f} -> output "
                               f"{r[f'block{i}_output_auc']:.3f}" for i in range(4) if f"block{i}_values_auc" in r)
            lines.append(f"| probe AUC (train -> val) along the read-out: {blocks}; classifier input "
                         f"{r['classifier_input_auc']:.3f} (its relation half {r['relation_feature_auc']:.3f}) | | |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a finished seed folder of benchmark_feature_bank.py")
    p.add_argument("--datasets", default=os.environ.get("ACAR_DATASETS", "datasets"),
                   help="root holding aca_world_lr/")
    p.add_argument("--heads", nargs="*", default=["ft_acfb"],
                   help="bank-model folders of --run whose reading is probed (item 2)")
    p.add_argument("--at-init", action="store_true",
                   help="also probe each head where its training started (bank blocks untrained)")
    p.add_argument("--seed", type=int, default=None, help="the run's seed (default: from seed<N>)")
    p.add_argument("--read-out", action="store_true",
                   help="also probe along the head's read-out: block values and outputs, classifier "
                        "input (runs the model over the train targets)")
    p.add_argument("--min-t", type=int, default=3)
    p.add_argument("--limit", type=int, default=0, help="item 2 on the first N targets only")
    p.add_argument("--output", default="", help="probe.json location (default: --run/probe.json)")
    p.add_argument("opts", nargs=argparse.REMAINDER,
                   help="the benchmark's config overrides KEY VALUE ... (as given to it)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from benchmark_feature_bank import register_world  # noqa: E402  (same folder)

    run = Path(args.run).resolve()
    world_dir = Path(args.datasets).expanduser().resolve() / "aca_world_lr"
    world = json.loads((world_dir / "world.json").read_text())
    if not world.get("long_range"):
        raise ValueError(f"{world_dir}/world.json is not a --long-range world")
    need_files = [run / "bank_acfb" / "bank_record.json"]
    need_files += [run / h / "model_final.pth" for h in args.heads]
    for need in need_files:
        if not need.is_file():
            raise FileNotFoundError(f"{need} not found: --run must be a finished seed folder of "
                                    "benchmark_feature_bank.py --part synthetic")
    torch.set_num_threads(1)
    names = register_world(world_dir)
    seed = args.seed
    if seed is None:
        match = re.fullmatch(r"seed(\d+)", run.name)
        if not match:
            raise ValueError(f"--run {run} is not named seed<N>: give --seed")
        seed = int(match.group(1))
    res = {"run": str(run), "min_t": args.min_t,
           "content": part_content(str(run / "bank_acfb"), world, args.min_t), "reading": {}}
    for head in args.heads:
        for at_init in (True, False) if args.at_init else (False,):
            cfg, model = load_bank_model(run, names, head, at_init, seed, args.opts)
            r = part_reading(model, cfg, cfg.MODEL.FEATURE_BANK.DIR, world, names, args.min_t, args.limit)
            if args.read_out:
                r.update(part_read_out(model, cfg, world, names, args.min_t))
            res["reading"][head + (" at init" if at_init else "")] = r
    res["table"] = format_probe(res)
    print(res["table"])
    out = Path(args.output) if args.output else run / "probe.json"
    out.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
