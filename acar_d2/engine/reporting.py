"""
Summaries of evaluation results for people (used by ``tools/quickstart.py`` and
``tools/benchmark_relations.py``): overall frame-mAP, per-class AP, means per class group, and the
frame-mAP that input-blind scores would reach (the chance level).
"""
from collections import Counter
from typing import Dict, List, Mapping, Sequence

from detectron2.evaluation.testing import flatten_results_dict

__all__ = ["summarize_frame_map", "chance_frame_map"]


def _names_class(key: str, name: str) -> bool:
    """Whether a flattened result key is the AP of class ``name`` ("…/name", "…/AP-name")."""
    return key.rsplit("/", 1)[-1] in (name, f"AP-{name}", f"AP@0.5-{name}")


def summarize_frame_map(
    results: Mapping, class_names: Sequence[str], class_groups: Mapping[str, Sequence[int]] = None
) -> Dict[str, object]:
    """
    Args:
        results (dict): what ``Trainer.test`` returns for one dataset (the evaluator's dict).
        class_names (list[str]): K class names (``MetadataCatalog.action_classes``).
        class_groups (dict[str, list[int]]): group -> class indices (metadata ``class_groups``).

    Returns:
        dict: ``frame_mAP`` (float, %), ``per_class`` ({name: AP}), ``per_group`` ({group: mean AP}).

    Raises:
        KeyError: naming the keys found, when the results hold no overall mAP entry.
    """
    flat = flatten_results_dict(dict(results))
    per_class = {n: float(v) for n in class_names for k, v in flat.items() if _names_class(k, n)}
    # The evaluator's overall entry is "frame_mAP@0.5"; "mAP-<group>" entries are group means.
    overall = [k for k in flat if k.rsplit("/", 1)[-1].lower().startswith("frame_map")]
    if not overall:
        raise KeyError(f"no frame_mAP entry in the evaluation results; keys: {sorted(flat)}")
    per_group = {}
    for group, indices in (class_groups or {}).items():
        values = [per_class[class_names[i]] for i in indices if class_names[i] in per_class]
        if values:
            per_group[group] = sum(values) / len(values)
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
