#!/usr/bin/env python
"""
Prepare the AVA-Kinetics ground truth the evaluator reads: AVA v2.2 + Kinetics rows in one CSV
(Kinetics timestamps as integers, person id -1).

    python datasets/prepare_ava_kinetics.py [--root $ACAR_DATASETS] [--overwrite]

Reads ``ava/annotations/ava_{train,val}_v2.2.csv`` and ``ava_kinetics/annotations/
kinetics_{train,val}_v1.0.csv``; writes ``ava_kinetics/annotations/ava_kinetics_{train,val}_v1.0.csv``
(never over an existing file without --overwrite). Layout: datasets/README.md "AVA-Kinetics".
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acar_d2.data.datasets.ava_kinetics import write_combined_groundtruth  # noqa: E402
from acar_d2.engine.cli import add_debug_flag, run_cli  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=os.path.expanduser(os.getenv("ACAR_DATASETS", "datasets")))
    p.add_argument("--overwrite", action="store_true")
    add_debug_flag(p)
    args = p.parse_args(argv)
    ann = os.path.join(args.root, "ava_kinetics", "annotations")
    for split in ("train", "val"):
        out = os.path.join(ann, f"ava_kinetics_{split}_v1.0.csv")
        n = write_combined_groundtruth(
            os.path.join(args.root, "ava", "annotations", f"ava_{split}_v2.2.csv"),
            os.path.join(ann, f"kinetics_{split}_v1.0.csv"), out, overwrite=args.overwrite)
        print(f"wrote {n} rows to {out}")
    return 0


if __name__ == "__main__":
    run_cli(main, prog="datasets/prepare_ava_kinetics.py")
