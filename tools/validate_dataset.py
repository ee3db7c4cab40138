#!/usr/bin/env python
"""
Check an AVA-format dataset before training (the checks: ``acar_d2/data/validate.py``).

    python tools/validate_dataset.py --dataset NAME            # a registered split
    python tools/validate_dataset.py --config-file my.yaml [--dataset NAME]   # DATASETS.CUSTOM
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tools/validate_dataset.py", description=validate.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="a registered split (its files from the metadata)")
    p.add_argument("--config-file", help="a config whose DATASETS.CUSTOM splits are registered "
                   "first; without --dataset, each of them is checked")
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
    names = [args.dataset] if args.dataset else []
    if args.config_file:
        from detectron2.config import get_cfg

        from acar_d2.data.datasets import register_config_datasets

        # only the datasets of the config: its model keys are checked by tools/train_net.py
        cfg = get_cfg()
        acar_d2.add_acar_config(cfg)
        cfg.merge_from_file(args.config_file)
        custom = register_config_datasets(cfg)
        names = names or custom
        if not names:
            p.error(f"{args.config_file} has no DATASETS.CUSTOM split; give --dataset NAME")
    if names:
        return max([_check(files_of_dataset(n), args, n if args.config_file else "") for n in names])
    if args.annotations and args.label_map:
        return _check(dict(annotations=args.annotations, label_map=args.label_map,
                           frames=args.frames, frame_list=args.frame_list, videos=args.videos,
                           proposals=args.proposals, exclusions=args.exclusions, fps=args.fps,
                           first_second=args.first_second, kinetics=args.kinetics), args)
    p.error("give --dataset NAME, --config-file CONFIG, or --annotations CSV and --label-map PBTXT")


def _check(files: dict, args, title: str = "") -> int:
    """Validate one split, print its report; 1 when it has errors."""
    files["half_span"] = args.half_span
    t0 = time.perf_counter()
    report = validate_ava_dataset(**files)
    report.stats["seconds"] = round(time.perf_counter() - t0, 2)
    if title:
        print(f"== {title}")
    print(report.format(max_per_check=args.max_per_check))
    return 1 if report.errors else 0

if __name__ == "__main__":
    run_cli(main, prog="tools/validate_dataset.py")
