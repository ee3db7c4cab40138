#!/usr/bin/env python
"""
Run time of ``python tools/validate_dataset.py`` on an AVA-size dataset, and what it finds on a
deliberately broken copy of the synthetic world.

    python tools/benchmarks/benchmark_validate.py [--world datasets/aca_world] [--rows 210000] [--out DIR]

The AVA-size dataset repeats the world's train CSV under renamed video ids (frame folders are
symlinks to the world's, proposals copied under the new ids) until it has ``--rows`` rows. The
broken copy plants one instance of each problem class at a known line and prints what the
validator reports per check. Nothing is written outside ``--out`` (default: a temp folder).
"""
import argparse
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from acar_d2.data.validate import validate_ava_dataset  # noqa: E402


def scale(world: Path, out: Path, rows: int):
    ann = world / "annotations"
    lines = (ann / "train.csv").read_text().splitlines()
    props = pickle.load(open(ann / "dense_proposals_train.pkl", "rb"))
    videos = sorted({ln.split(",", 1)[0] for ln in lines})
    (out / "frames").mkdir(parents=True)
    csv_lines, big_props, k = [], {}, 0
    while len(csv_lines) < rows:
        for v in videos:
            os.symlink((world / "frames" / v).resolve(), out / "frames" / f"{v}_r{k}")
        csv_lines += [ln.replace(",", f"_r{k},", 1) for ln in lines]
        big_props.update({key.replace(",", f"_r{k},", 1): a for key, a in props.items()})
        k += 1
    (out / "train.csv").write_text("\n".join(csv_lines[:rows]) + "\n")
    with open(out / "props.pkl", "wb") as f:
        pickle.dump(big_props, f)
    return out / "train.csv", out / "props.pkl", k


def broken(world: Path, out: Path):
    """A copy of the train CSV with one planted problem per class; returns (csv, planted)."""
    lines = (world / "annotations" / "train.csv").read_text().splitlines()
    first = lines[0].split(",")
    planted = {
        "schema": ",".join(first[:6]),
        "box_order": ",".join(first[:2] + [first[4], first[3], first[2], first[5]] + first[6:]),
        "box_range": ",".join(first[:2] + ["120", "40", "200", "160"] + first[6:]),
        "unknown_action": ",".join(first[:6] + ["42", first[7]]),
        "person_id": ",".join(first[:7] + ["-3"]),
        "duplicate": lines[5],
        "missing_video": ",".join(["no_such_video"] + first[1:]),
        "timestamp_range": ",".join([first[0], "0999"] + first[2:]),
    }
    out_lines = lines + list(planted.values())
    where = {k: len(lines) + 1 + i for i, k in enumerate(planted)}
    (out / "broken.csv").write_text("\n".join(out_lines) + "\n")
    return out / "broken.csv", where


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", default="datasets/aca_world")
    p.add_argument("--rows", type=int, default=210000)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    world = Path(args.world)
    if not (world / "world.json").is_file():
        sys.exit(f"{world}/world.json not found: python tools/make_synthetic_ava.py --out {world}")
    fps = json.loads((world / "world.json").read_text())["fps"]
    out = Path(args.out or tempfile.mkdtemp(prefix="acar_validate_"))
    if any(out.iterdir()) if out.exists() else False:
        sys.exit(f"{out} is not empty; give an empty or new --out")
    out.mkdir(parents=True, exist_ok=True)
    label_map = str(world / "annotations" / "label_map.pbtxt")
    try:
        csv_path, props, copies = scale(world, out / "ava_size", args.rows)
        t0 = time.perf_counter()
        rep = validate_ava_dataset(str(csv_path), label_map, frames=str(out / "ava_size" / "frames"),
                                   proposals=str(props), fps=fps, first_second=0)
        dt = time.perf_counter() - t0
        print("| dataset | rows | key frames | videos | problems | seconds |")
        print("|---|---:|---:|---:|---:|---:|")
        print(f"| synthetic world train CSV x{copies} (AVA size) | "
              f"{rep.stats['rows']} | {rep.stats['key_frames']} | {rep.stats['videos']} | "
              f"{len(rep.problems)} | {dt:.2f} |")
        bad, where = broken(world, out)
        fr = validate_ava_dataset(str(bad), label_map, frames=str(world / "frames"),
                                  proposals=str(world / "annotations" / "dense_proposals_train.pkl"),
                                  fps=fps, first_second=0)
        print("\n| planted problem | line | found (check: lines) |")
        print("|---|---:|---|")
        for check, line in where.items():
            checks = sorted({q.check for q in fr.problems if q.line == line})
            print(f"| {check} | {line} | {', '.join(checks) or 'NOT FOUND'} |")
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
