"""
Summaries of evaluation results for people (``tools/quickstart.py``, ``tools/benchmarks/benchmark_relations.py``,
the frame-mAP CLI, ``AVAEvaluator``'s log): the overall frame-mAP, per-class AP and the class-group
means as the evaluator reports them, the frame-mAP input-blind scores would reach (chance level), a
per-class table and a per-class AP plot.

One convention everywhere: AP and mAP in **percent** (78.12), classes keyed by **name**. No torch /
detectron2 import (the CLI imports this module and starts without them).
"""
import math
from collections import Counter
from typing import Dict, List, Mapping, Optional, Sequence

__all__ = ["summarize_frame_map", "chance_frame_map", "plot_per_class_ap", "per_class_table",
           "group_means"]


def flatten_results_dict(results: Mapping, prefix: str = "") -> Dict[str, object]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}`` (detectron2's ``flatten_results_dict``)."""
    flat = {}
    for k, v in results.items():
        if isinstance(v, Mapping):
            flat.update(flatten_results_dict(v, f"{prefix}{k}/"))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def group_means(per_class: Mapping[str, float], groups: Mapping[str, Sequence[str]]) -> Dict[str, float]:
    """Mean AP of each class group over its classes with an AP (NaN / None left out, as the
    evaluator's ``mAP-<group>``); groups without any are left out."""
    out = {}
    for group, names in groups.items():
        aps = [per_class[n] for n in names if per_class.get(n) is not None
               and not math.isnan(per_class[n])]
        if aps:
            out[group] = sum(aps) / len(aps)
    return out


def per_class_table(rows: Sequence[Sequence[object]]) -> str:
    """
    A plain text table of per-class results, AP in percent.

    Args:
        rows: ``(id, name, group, num_gt, num_detections, ap)`` per class, ``ap`` in percent or
            NaN (no ground truth: not in the mean).
    """
    header = ("id", "class", "group", "#gt", "#det", "AP@0.5 (%)")
    body = [(str(i), str(n), str(g or "-"), str(ng), str(nd),
             "-" if ap is None or math.isnan(ap) else f"{ap:.2f}") for i, n, g, ng, nd, ap in rows]
    widths = [max(len(r[j]) for r in [header] + body) for j in range(len(header))]
    right = (True, False, False, True, True, True)

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right))

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in body])


def _last(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def summarize_frame_map(results: Mapping, class_names: Sequence[str]) -> Dict[str, object]:
    """
    Pick the numbers people read out of an ``AVAEvaluator`` result dict.

    Args:
        results (dict): what ``Trainer.test`` returns for one dataset (the evaluator's dict, possibly
            nested under the task name).
        class_names (list[str]): K class names (``MetadataCatalog.action_classes``).

    Returns:
        dict: ``frame_mAP`` (float, %), ``per_class`` ({name: AP}), ``per_group`` ({group: mean AP},
        the evaluator's ``mAP-<group>`` entries).

    Raises:
        KeyError: naming the keys found, when the results hold no overall ``frame_mAP`` entry.
    """
    flat = flatten_results_dict(dict(results))
    names = set(class_names)
    per_class = {}
    for k, v in flat.items():
        name = _last(k)
        for prefix in ("AP@0.5-", "AP-", ""):
            if name.startswith(prefix) and name[len(prefix):] in names:
                per_class[name[len(prefix):]] = float(v)
                break
    per_class = {n: per_class[n] for n in class_names if n in per_class}
    overall = [k for k in flat if _last(k).lower().startswith("frame_map")]
    if not overall:
        raise KeyError(f"no frame_mAP entry in the evaluation results; keys: {sorted(flat)}")
    per_group = {_last(k)[len("mAP-"):]: float(v) for k, v in flat.items() if _last(k).startswith("mAP-")}
    return {
        "frame_mAP": float(flat[min(overall, key=len)]),
        "per_class": per_class,
        "per_group": per_group,
    }


def chance_frame_map(dataset_dicts: List[dict], action_ids: Sequence[int]) -> float:
    """
    Frame-mAP (%) of scores that ignore the input, given perfect boxes: a random ranking has a
    precision equal to the class's share of the boxes at every recall, so its AP is that share;
    averaged over the classes that occur.
    """
    num_boxes = sum(len(d["annotations"]) for d in dataset_dicts)
    counts = Counter(a for d in dataset_dicts for ann in d["annotations"] for a in ann["action_ids"])
    shares = [counts[i] / num_boxes for i in action_ids if counts[i] > 0]
    return 100.0 * sum(shares) / max(1, len(shares))


_GROUP_COLORS = {"pose": "tab:blue", "person_object": "tab:orange", "person_person": "tab:green"}


def plot_per_class_ap(
    per_class_ap: Mapping[str, float],
    path: str,
    title: str,
    *,
    groups: Optional[Mapping[str, Sequence[str]]] = None,
    order: Optional[Sequence[str]] = None,
    counts: Optional[Mapping[str, int]] = None,
    scale: float = 100.0,
) -> None:
    """
    Per-class AP bars (PNG), coloured by class group, the one plot of the quickstart and the CLI.

    Args:
        per_class_ap: class name -> AP (percent); classes with a NaN AP (no ground truth) are left
            out.
        path: output file.
        title: plot title.
        groups: group name ("pose", "person_object", "person_person", ...) -> class names.
        order: class names in the order to draw (e.g. by training-sample count, as ACAR Fig. 4);
            default: the order of ``per_class_ap``.
        counts: class name -> training-sample count, shown under each class name.
        scale: the AP value of a perfect class (100 for %, 1 for fractions).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names = [n for n in (order or list(per_class_ap)) if n in per_class_ap]
    names = [n for n in names if not math.isnan(per_class_ap[n])]
    group_of = {n: g for g, members in (groups or {}).items() for n in members}
    colors = [_GROUP_COLORS.get(group_of.get(n), "tab:gray") for n in names]
    labels = [f"{n} ({counts.get(n, 0)})" if counts is not None else n for n in names]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(names) + 1.5), 4.5 if len(names) > 15 else 4.0))
    ax.bar(range(len(names)), [per_class_ap[n] for n in names], color=colors)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(labels, rotation=90 if len(names) > 15 else 45, ha="center" if len(names) > 15
                       else "right", fontsize=8)
    if counts is not None:
        ax.set_xlabel("class (training samples)", fontsize=9)
    ax.set_ylabel("AP@0.5" + (" (%)" if scale == 100.0 else ""))
    ax.set_ylim(0, scale)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    used = [g for g in _GROUP_COLORS if g in (groups or {})]
    if used:
        ax.legend(handles=[Patch(color=_GROUP_COLORS[g], label=g) for g in used], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
