"""
Command line: official AVA frame-mAP@0.5 of a detection CSV.

    python -m acar_d2.evaluation.ava --groundtruth GT.csv --detections DET.csv --labelmap MAP.pbtxt \
        [--exclusions EXCL.csv] [--json OUT.json] [--plot OUT.png] [--train-counts TRAIN.csv]

Prints a per-class table and, as its last line, ``frame-mAP@0.5IOU: <value>`` (a fraction, like
the official script). ``--json`` writes ``{"mAP": float, "per_class_AP": {"<id>": float or null}}``.
"""
import argparse
import json
import math
import sys
import time
from collections import Counter
from typing import Dict, List, Optional

from .ava_evaluation import per_class_table
from ..data.ava_format import read_box_csv, read_exclusions, read_label_map
from .frame_map import FrameMAPResult, frame_map

__all__ = ["main", "evaluate_files", "plot_per_class_ap"]


def evaluate_files(groundtruth: str, detections: str, labelmap: str,
                   exclusions: Optional[str] = None) -> FrameMAPResult:
    """Read the official evaluation inputs and compute the frame-mAP."""
    return frame_map(
        read_box_csv(groundtruth, groundtruth=True),
        read_box_csv(detections),
        read_label_map(labelmap, require_groups=False),
        read_exclusions(exclusions),
    )


def plot_per_class_ap(result: FrameMAPResult, label_map: Dict[int, str], path: str,
                      train_counts: Optional[Dict[int, int]] = None) -> None:
    """
    Per-class AP bars; sorted by training-sample count (descending) when given, like the ACAR
    paper's Fig. 4, else by id. Classes without ground truth are omitted.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = [c for c in sorted(label_map) if not math.isnan(result.per_class_AP[c])]
    if train_counts is not None:
        ids.sort(key=lambda c: -train_counts.get(c, 0))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(ids)), 4.0))
    ax.bar(range(len(ids)), [result.per_class_AP[c] for c in ids], color="tab:blue")
    ax.set_xticks(range(len(ids)))
    ax.set_xticklabels([label_map[c] for c in ids], rotation=90, fontsize=7)
    ax.set_ylabel("AP@0.5")
    ax.set_ylim(0, 1)
    ax.set_title(f"frame-mAP@0.5 = {result.mAP:.4f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _train_counts(path: str) -> Dict[int, int]:
    table = read_box_csv(path, groundtruth=True)
    return dict(Counter(table.labels.tolist()))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groundtruth", "-g", required=True, help="ground-truth CSV")
    parser.add_argument("--detections", "-d", required=True, help="detections CSV")
    parser.add_argument("--labelmap", "-l", required=True, help="label map .pbtxt")
    parser.add_argument("--exclusions", "-e", default=None, help="excluded timestamps CSV")
    parser.add_argument("--json", default=None, help="write {mAP, per_class_AP} here")
    parser.add_argument("--plot", default=None, help="write a per-class AP bar plot (png)")
    parser.add_argument("--train-counts", default=None,
                        help="training annotation CSV: sort the plot by training-sample count")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    try:
        label_map = read_label_map(args.labelmap, require_groups=False)
        result = evaluate_files(args.groundtruth, args.detections, args.labelmap, args.exclusions)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(per_class_table(result, label_map))
    print(f"evaluated in {time.perf_counter() - start:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "mAP": result.mAP,
                "per_class_AP": {str(c): (None if math.isnan(v) else v)
                                 for c, v in sorted(result.per_class_AP.items())},
            }, f, indent=1)
    if args.plot:
        counts = _train_counts(args.train_counts) if args.train_counts else None
        plot_per_class_ap(result, label_map, args.plot, counts)
    print(f"frame-mAP@0.5IOU: {result.mAP}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
