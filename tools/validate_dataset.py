#!/usr/bin/env python
"""
Check an AVA-format dataset before training (the checks: ``acar_d2/data/validate.py``).

    python tools/validate_dataset.py --dataset NAME            # a registered split
    python tools/validate_dataset.py --annotations train.csv --label-map labels.pbtxt \\
        [--frames frames/ | --videos videos/] [--frame-list L] [--proposals P] \\
        [--exclusions E] [--fps 30] [--first-second 0]

Exit status 1 when an error-level check fails; 2 with one line when an input cannot be read
(``--debug``: the traceback).
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import acar_d2  # noqa: F401, E402  (registers the builtin splits)
from acar_d2.data import validate  # noqa: E402
from acar_d2.data.validate import files_of_dataset, validate_ava_dataset  # noqa: E402
from acar_d2.engine.cli import add_debug_flag, run_cli  # noqa: E402
from ava_eval.label_map import read_label_map  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tools/validate_dataset.py", description=validate.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="a registered split (its files from the metadata)")
    p.add_argument("--annotations")
    p.add_argument("--label-map")
    p.add_argument("--frames", help="folder of <video_id>/ frame folders")
    p.add_argument("--frame-list")
    p.add_argument("--videos", help="folder of <video_id>.mp4")
    p.add_argument("--proposals")
    p.add_argument("--exclusions")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--first-second", type=int, default=0)
    p.add_argument("--half-span", type=int, default=32, help="frames a clip reaches on each side "
                   "of its key frame: NUM_FRAMES * SAMPLING_RATE // 2 (32 for 32x2)")
    p.add_argument("--kinetics", action="store_true", help="an AVA-Kinetics CSV; --frames / "
                   "--videos hold its clips <youtube_id>_<start>_<end>")
    p.add_argument("--max-per-check", type=int, default=20, help="problems printed per check")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if args.dataset:
        files = files_of_dataset(args.dataset)
        files["half_span"] = args.half_span
    elif args.annotations and args.label_map:
        files = dict(annotations=args.annotations, label_map=args.label_map, frames=args.frames,
                     frame_list=args.frame_list, videos=args.videos, proposals=args.proposals,
                     exclusions=args.exclusions, fps=args.fps, first_second=args.first_second,
                     half_span=args.half_span, kinetics=args.kinetics)
    else:
        p.error("give --dataset NAME, or --annotations CSV and --label-map PBTXT")
    t0 = time.perf_counter()
    report = validate_ava_dataset(**files)
    report.stats["seconds"] = round(time.perf_counter() - t0, 2)
    lmap = read_label_map(files["label_map"], require_groups=False)
    print(report.format(dict(zip(lmap.ids, lmap.names)), args.max_per_check))
    return 1 if report.errors else 0


if __name__ == "__main__":
    run_cli(main, prog="tools/validate_dataset.py")
