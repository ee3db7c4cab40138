"""
Summaries of evaluation results for people (``tools/quickstart.py``, ``tools/benchmark_relations.py``,
the frame-mAP CLI): the overall frame-mAP, per-class AP and the class-group means as the evaluator
reports them, the frame-mAP input-blind scores would reach (chance level), and a per-class AP plot.
"""
from collections import Counter
from typing import Dict, List, Mapping, Optional, Sequence

from detectron2.evaluation.testing import flatten_results_dict

__all__ = ["summarize_frame_map", "chance_frame_map", "plot_per_class_ap"]


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
    scale: float = 100.0,
) -> None:
    """
    Per-class AP bars (PNG), coloured by class group.

    Args:
        per_class_ap: class name -> AP; classes with a NaN AP (no ground truth) are left out.
        path: output file.
        title: plot title.
        groups: group name ("pose", "person_object", "person_person", ...) -> class names.
        order: class names in the order to draw (e.g. by training-sample count, as ACAR Fig. 4);
            default: the order of ``per_class_ap``.
        scale: the AP value of a perfect class (100 for %, 1 for fractions).
    """
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names = [n for n in (order or list(per_class_ap)) if n in per_class_ap]
    names = [n for n in names if not math.isnan(per_class_ap[n])]
    group_of = {n: g for g, members in (groups or {}).items() for n in members}
    colors = [_GROUP_COLORS.get(group_of.get(n), "tab:gray") for n in names]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(names) + 1.5), 4.0))
    ax.bar(range(len(names)), [per_class_ap[n] for n in names], color=colors)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90 if len(names) > 15 else 45, fontsize=7)
    ax.set_ylabel("AP@0.5" + (" (%)" if scale == 100.0 else ""))
    ax.set_ylim(0, scale)
    ax.set_title(title, fontsize=9)
    used = [g for g in _GROUP_COLORS if g in (groups or {})]
    if used:
        ax.legend(handles=[Patch(color=_GROUP_COLORS[g], label=g) for g in used], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
