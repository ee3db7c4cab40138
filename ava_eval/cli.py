"""
The AVA frame-mAP command line, one command under two names:

    acar-ava-eval --groundtruth GT.csv --detections DET.csv --labelmap MAP.pbtxt \
        [--exclusions EXCL.csv] [--json OUT.json] [--plot OUT.png] [--train-counts TRAIN.csv]
    python -m ava_eval ...           (the same: ava_eval/__main__.py)

It uses only the evaluator package ``ava_eval`` (NumPy and the standard library; matplotlib for
``--plot``), which imports neither torch nor detectron2 nor acar_d2, so it starts in a fraction of
a second. Output, units and ``--json`` keys: :mod:`ava_eval.evaluate`.
"""
import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from typing import Dict, List, Optional

from .csv_io import read_box_csv, read_exclusions
from .label_map import read_label_map
from .evaluate import class_keys, summarize
from .frame_map import frame_map
from .reporting import per_class_table, plot_per_class_ap

__all__ = ["main"]

_INPUTS = ("groundtruth", "detections", "labelmap", "exclusions", "train_counts")


class _Failure(Exception):
    pass


def _check_arguments(args) -> None:
    """Before any scoring: inputs exist and are files; output folders exist (created if
    missing) and outputs are neither folders nor one of the inputs."""
    for name in _INPUTS:
        path = getattr(args, name)
        if path is None:
            continue
        flag = "--" + name.replace("_", "-")
        if os.path.isdir(path):
            raise _Failure(f"{flag}: {path} is a directory; expected a file")
        if not os.path.isfile(path):
            raise _Failure(f"{flag}: file not found: {path}")
    inputs = {os.path.realpath(getattr(args, n)) for n in _INPUTS if getattr(args, n)}
    for name in ("json", "plot"):
        path = getattr(args, name)
        if path is None:
            continue
        if os.path.isdir(path):
            raise _Failure(f"--{name}: {path} is a directory; give a file name")
        if os.path.realpath(path) in inputs:
            raise _Failure(f"--{name}: {path} is one of the input files; refusing to overwrite it")
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise _Failure(f"--{name}: cannot create the folder {folder} ({e})") from None
        if not os.access(folder, os.W_OK):
            raise _Failure(f"--{name}: the folder {folder} is not writable")


def _read(flag: str, fn, *a, **k):
    try:
        return fn(*a, **k)
    except (ValueError, KeyError, OSError) as e:
        raise _Failure(f"{flag}: {e}") from None


def _write_json(path: str, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="acar-ava-eval", description="Official AVA frame-mAP@0.5 of a detection CSV.",
        epilog="AP values are in percent, as in train_net.py and eval_results.json.")
    parser.add_argument("--groundtruth", "-g", required=True, help="ground-truth CSV")
    parser.add_argument("--detections", "-d", required=True, help="detections CSV")
    parser.add_argument("--labelmap", "-l", required=True, help="label map .pbtxt")
    parser.add_argument("--exclusions", "-e", default=None, help="excluded timestamps CSV")
    parser.add_argument("--json", default=None, help="write the results here (percent, by name)")
    parser.add_argument("--plot", default=None, help="write a per-class AP bar plot (png) here")
    parser.add_argument("--train-counts", default=None,
                        help="training annotation CSV: sort the plot by training-sample count")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logs = [logging.getLogger(n) for n in ("ava_eval", "acar_d2")]  # readers' + protocol warnings
    for log in logs:
        log.addHandler(handler)
    try:
        return _run(args)
    finally:
        for log in logs:
            log.removeHandler(handler)


def _run(args) -> int:
    start = time.perf_counter()
    try:
        _check_arguments(args)
        label_map = _read("--labelmap", read_label_map, args.labelmap, require_groups=False)
        gt = _read("--groundtruth", read_box_csv, args.groundtruth, groundtruth=True)
        det = _read("--detections", read_box_csv, args.detections)
        excluded = _read("--exclusions", read_exclusions, args.exclusions)
        try:
            result = frame_map(gt, det, label_map, excluded)
        except ValueError as e:
            raise _Failure(str(e)) from None
        summary = summarize(result, label_map)
        counts = None
        if args.train_counts:
            table = _read("--train-counts", read_box_csv, args.train_counts, groundtruth=True)
            names = class_keys(label_map)
            ids = Counter(table.labels.tolist())
            counts = {names[c]: ids.get(c, 0) for c in names}
    except _Failure as e:
        print(f"acar-ava-eval: error: {e}", file=sys.stderr)  # one line, as every acar_d2 tool
        return 2

    print(per_class_table([(c, label_map[c], g, result.num_gt[c], result.num_detections[c],
                            100.0 * result.per_class_AP[c])
                           for c, g in zip(label_map, label_map.groups)]))
    if summary["per_group"]:
        print("by class group: " + ", ".join(f"{g} {v:.2f}" for g, v in summary["per_group"].items()))
    print(f"evaluated in {time.perf_counter() - start:.2f} s")
    if args.json:
        _write_json(args.json, summary)
        print(f"wrote {args.json}")
    if args.plot:
        per_class = {k: v for k, v in summary["per_class"].items() if v is not None}
        order = sorted(per_class, key=lambda n: -counts[n]) if counts else None
        groups: Dict[str, List[str]] = {}
        for name, g in zip(class_keys(label_map).values(), label_map.groups):
            groups.setdefault(g or "other", []).append(name)
        plot_per_class_ap(per_class, args.plot, f"frame-mAP@0.5 = {summary['frame_mAP']:.2f} %",
                          groups=groups, order=order, counts=counts)
        print(f"wrote {args.plot}")
    print(f"frame-mAP@0.5 (%): {summary['frame_mAP']!r}")
    return 0

