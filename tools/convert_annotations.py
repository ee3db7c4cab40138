#!/usr/bin/env python
"""
Convert action annotations to / from AVA CSVs.

  acar-to-csv  PKL OUT.csv                      ACAR-Net annotation pickle -> AVA CSV
  csv-to-acar  CSV LABEL_MAP OUT.pkl            AVA CSV -> ACAR-Net annotation pickle
  cvat-to-csv  XML LABEL_MAP OUT.csv --video-id ID [--fps F --first-second S]
                                                CVAT "for video 1.1" XML -> AVA CSV

Outputs are never overwritten unless --overwrite is given. A bad input file ends as one line
naming it and exit status 2 (--debug: the traceback).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acar_d2.engine.cli import add_debug_flag, run_cli  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("acar-to-csv")
    a.add_argument("pkl")
    a.add_argument("out")
    c = sub.add_parser("csv-to-acar")
    c.add_argument("csv")
    c.add_argument("label_map")
    c.add_argument("out")
    c.add_argument("--fps", type=float, default=30.0)
    c.add_argument("--first-second", type=int, default=900)
    v = sub.add_parser("cvat-to-csv")
    v.add_argument("xml")
    v.add_argument("label_map")
    v.add_argument("out")
    # AVA ids may start with "-": pass them as --video-id=-FaXLcSFjUI
    v.add_argument("--video-id", required=True)
    v.add_argument("--fps", type=float, default=None, help="frame rate (default: from the XML, else 30)")
    v.add_argument("--first-second", type=int, default=0)
    for s in (a, c, v):
        s.add_argument("--overwrite", action="store_true")
        add_debug_flag(s)
    args = p.parse_args(argv)

    from acar_d2.data.formats.acar_pickle import acar_pickle_to_csv, csv_to_acar_pickle

    if args.cmd == "acar-to-csv":
        n = acar_pickle_to_csv(args.pkl, args.out, args.overwrite)
        print(f"wrote {n} rows to {args.out}")
    elif args.cmd == "csv-to-acar":
        n = csv_to_acar_pickle(args.csv, args.label_map, args.out, fps=args.fps,
                               first_second=args.first_second, overwrite=args.overwrite)
        print(f"wrote {n} key frames to {args.out}")
    else:
        from acar_d2.data.formats.cvat import cvat_video_to_ava_csv

        n = cvat_video_to_ava_csv(args.xml, args.label_map, args.out, video_id=args.video_id,
                                  fps=args.fps, first_second=args.first_second,
                                  overwrite=args.overwrite)
        print(f"wrote {n} rows to {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main, prog="tools/convert_annotations.py")
