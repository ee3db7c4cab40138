#!/usr/bin/env python
"""
Convert person-proposal files between PySlowFast CSV, MMAction2 pickle and ACAR-Net pickle.

  python tools/convert_proposals.py SRC DST --to {pyslowfast_csv,mmaction_pkl,acar_pkl}
      [--from FORMAT] [--fps 30 --first-second 900] [--overwrite]

The source format is detected from the content when --from is not given. DST is never
overwritten unless --overwrite is given. A bad input file ends as one line naming it and exit
status 2 (--debug: the traceback).
"""
import argparse

from acar_d2.data.formats.proposals import PROPOSAL_FORMATS, convert_proposals
from acar_d2.engine.cli import add_debug_flag, run_cli


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--to", required=True, choices=PROPOSAL_FORMATS)
    p.add_argument("--from", dest="src_format", choices=PROPOSAL_FORMATS, default=None)
    p.add_argument("--fps", type=float, default=30.0, help="frame window of acar_pkl records")
    p.add_argument("--first-second", type=int, default=900)
    p.add_argument("--overwrite", action="store_true")
    add_debug_flag(p)
    args = p.parse_args(argv)
    n = convert_proposals(args.src, args.dst, args.to, args.src_format, overwrite=args.overwrite,
                          fps=args.fps, first_second=args.first_second)
    print(f"wrote {n} key frames to {args.dst} ({args.to})")
    return 0


if __name__ == "__main__":
    run_cli(main, prog="tools/convert_proposals.py")
