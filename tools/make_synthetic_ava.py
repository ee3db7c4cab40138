#!/usr/bin/env python
"""
Generate the synthetic AVA-format world "aca_world" (see datasets/SYNTHETIC.md).

    python tools/make_synthetic_ava.py --out datasets/aca_world [--videos 60] [--seed 0] [--stats]
    python tools/make_synthetic_ava.py --out datasets/aca_world_lr --long-range   # + left_behind
    python tools/make_synthetic_ava.py --out datasets/aca_world_rel --relation --videos 300

Writes frames, mp4 videos, frame lists, annotation CSVs, label map, exclusions, predicted boxes
and dense proposals in the AVA formats, plus world.json (classes and per-key-frame scene graphs).
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acar_d2.data.synthetic import format_stats, write_world  # noqa: E402
from acar_d2.engine.cli import add_debug_flag, run_cli  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder, e.g. $ACAR_DATASETS/aca_world")
    parser.add_argument("--videos", type=int, default=60, help="total videos (20%% go to val)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (same seed, same bytes)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per video")
    parser.add_argument("--no-videos", action="store_true", help="skip the mp4 files")
    parser.add_argument("--stats", action="store_true", help="print the class list with counts")
    parser.add_argument("--long-range", action="store_true",
                        help="option: add the class 'left_behind' whose evidence lies > 2 s before "
                             "the key frame (one shot per video; datasets/SYNTHETIC.md)")
    parser.add_argument("--relation", action="store_true",
                        help="option: the relation world, where the indirect classes' negatives "
                             "share the positives' first-order cue (datasets/SYNTHETIC.md)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    world = write_world(args.out, num_videos=args.videos, seed=args.seed,
                        duration_s=args.duration, write_videos=not args.no_videos,
                        long_range=args.long_range, relation=args.relation)
    n = {k: len(v) for k, v in world["splits"].items()}
    print(f"aca_world: {n['train']} train + {n['val']} val videos written to {args.out} "
          f"in {time.perf_counter() - t0:.1f} s")
    if args.stats:
        print(format_stats(world))
    return 0


if __name__ == "__main__":
    run_cli(main, prog="tools/make_synthetic_ava.py")
