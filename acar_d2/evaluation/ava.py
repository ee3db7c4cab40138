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
from .reporting import plot_per_class_ap

__all__ = ["main", "evaluate_files"]


def evaluate_files(groundtruth: str, detections: str, labelmap: str,
                   exclusions: Optional[str] = None) -> FrameMAPResult:
    """Read the official evaluation inputs and compute the frame-mAP."""
    return frame_map(
        read_box_csv(groundtruth, groundtruth=True),
        read_box_csv(detections),
        read_label_map(labelmap, require_groups=False),
        read_exclusions(exclusions),
    )


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
        # Classes sorted by training-sample count (descending) when given, like ACAR Fig. 4.
        ap = {label_map[c]: v for c, v in sorted(result.per_class_AP.items())}
        order = None
        if args.train_counts:
            counts = _train_counts(args.train_counts)
            order = [label_map[c] for c in sorted(result.per_class_AP, key=lambda c: -counts.get(c, 0))]
        plot_per_class_ap(ap, args.plot, f"frame-mAP@0.5 = {result.mAP:.4f}", order=order, scale=1.0)
    print(f"frame-mAP@0.5IOU: {result.mAP}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
