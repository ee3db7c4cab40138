#!/usr/bin/env python
"""
Write a long-term feature bank (ACFB or LFB) by running a trained model without a bank over every
key time of registered datasets (train and val), one file pair per video (layout and window rules:
``acar_d2/data/feature_bank.py``; docs/FEATURE_BANKS.md).

    python tools/extract_feature_bank.py --config-file configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml \
        --kind acfb --output output/banks/acfb_r50 MODEL.WEIGHTS r50_acar.pth [--num-gpus 8]
    # then train the bank model with MODEL.FEATURE_BANK.DIR output/banks/acfb_r50

* ``--kind acfb``: per actor the first-order actor-context relation map after the head's
  down-sampling (the HR2O input) of an ACAR / actor-context model; ``--kind lfb``: per actor the
  [RoI(slow), RoI(fast)] feature vector of any model (the LFB paper's short-term features).
* Actors are the boxes the model itself uses at test time: its person detector, or the
  dataset's proposal file with ``TEST_PROPOSAL_SCORE_THRESH``.
* Multi-process through detectron2 ``launch`` (``--num-gpus N``: videos are dealt round-robin to
  the N processes; on CPU-only machines gloo). Progress bar per process. Resumable: a video is
  done when its ``.json`` index exists (written last, atomically), so a killed run started again
  with the same command skips finished videos and writes the same bytes for the others.
* Prints the number of videos / key times / actors and the size estimate (fp16) before starting.
* Writes ``bank_record.json`` (``BankRecord``: kind, entry shape, the settings a reader must
  share, config, weights path and sha256); an output folder holding a bank of another kind, model
  or config is refused by the rule the bank's readers apply (nothing is overwritten), and so is a second extraction into a folder while one runs
  there (the main process holds ``<output>/.acar_d2.lock``).
"""
import logging
import os
import sys
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectron2.data import DatasetCatalog  # noqa: E402
from detectron2.engine import default_argument_parser, launch  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from acar_d2.data.clip_mapper import ClipDatasetMapper  # noqa: E402
from acar_d2.data.bank_record import BankRecord  # noqa: E402
from acar_d2.data.feature_bank import RECORD_FILE, write_video_bank  # noqa: E402
from acar_d2.engine import setup_cfg  # noqa: E402
from acar_d2.engine.bank_extraction import BankEntryExtractor  # noqa: E402
from acar_d2.engine.cli import add_debug_flag, run_cli  # noqa: E402
from acar_d2.utils.output_lock import hold_output_folder  # noqa: E402

logger = logging.getLogger("acar_d2.extract_feature_bank")


def argument_parser():
    parser = default_argument_parser()
    parser.add_argument("--kind", required=True, choices=["acfb", "lfb"])
    parser.add_argument("--output", required=True, help="bank folder (MODEL.FEATURE_BANK.DIR)")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="registered datasets (default: DATASETS.TRAIN + DATASETS.TEST)")
    add_debug_flag(parser)
    return parser


def video_dicts(datasets: list) -> dict:
    """video_id -> its dataset dicts sorted by time (every key time of every dataset)."""
    out = defaultdict(dict)
    for name in datasets:
        for d in DatasetCatalog.get(name):
            out[d["video_id"]].setdefault(int(d["timestamp"]), d)
    return {v: [ts[t] for t in sorted(ts)] for v, ts in sorted(out.items())}


class Extractor:
    """Test mapper + :class:`BankEntryExtractor`: one dataset dict -> its bank entry."""

    def __init__(self, cfg, kind: str, dataset_name: str):
        self.entries = BankEntryExtractor(cfg, kind)
        self.model = self.entries.model
        self.mapper = ClipDatasetMapper(cfg, False, dataset_name=dataset_name)

    def __call__(self, d: dict) -> dict:
        return self.entries(self.mapper(d), int(d["timestamp"]))


def estimate(videos: dict, cfg, entry_shape: tuple) -> tuple:
    """(key times, estimated actors, bytes): proposals above the test threshold, else GT boxes."""
    thresh = cfg.MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH
    times = actors = 0
    for dicts in videos.values():
        for d in dicts:
            times += 1
            props = d.get("proposals") or {}
            if "scores" in props and not cfg.MODEL.PERSON_DETECTOR.NAME:
                actors += int((np.asarray(props["scores"]) >= thresh).sum())
            else:
                actors += len(d.get("annotations", []))
    return times, actors, actors * int(np.prod(entry_shape)) * 2


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}"
        size /= 1024.0


def main(args) -> dict:
    """Run on every process; the main one holds the bank folder's lock (one extraction per
    folder: a second one is refused at once, ``OutputLockedError``)."""
    cfg = setup_cfg(args.config_file, args.opts)  # a bad config creates no bank folder
    with hold_output_folder(args.output) if comm.is_main_process() else nullcontext():
        return extract(args, cfg)


def extract(args, cfg) -> dict:
    """This process's share of the videos (the main process also writes the record)."""
    setup_logger(name="acar_d2", distributed_rank=comm.get_rank())
    datasets = args.datasets or list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    videos = video_dicts(datasets)
    if not videos:
        raise ValueError(f"datasets {datasets} hold no key frame")
    folder = os.path.join(args.output, "videos")
    first_name = datasets[0]
    ex = Extractor(cfg, args.kind, first_name)
    probe = ex(next(d for ds in videos.values() for d in ds))
    entry_shape = probe["features"].shape[1:]
    record = BankRecord.of_extraction(cfg, args.kind, datasets, entry_shape)
    record_path = os.path.join(args.output, RECORD_FILE)
    if comm.is_main_process():
        record.write(args.output)  # or, resuming, check that the folder holds this extraction
        os.makedirs(folder, exist_ok=True)
        times, actors, size = estimate(videos, cfg, entry_shape)
        done = sum(os.path.isfile(os.path.join(folder, f"{v}.json")) for v in videos)
        print(f"[extract_feature_bank] {args.kind}: {len(videos)} videos ({done} done), {times} "
              f"key times, ~{actors} actors x {tuple(entry_shape)} fp16 = ~{_human(size)} "
              f"-> {args.output}", flush=True)
    comm.synchronize()
    if comm.get_rank() > 0:  # every process checks the record the main one wrote
        BankRecord.load(args.output).check_fits(record, args.output)
    mine = list(videos)[comm.get_rank()::comm.get_world_size()]
    todo = [v for v in mine if not os.path.isfile(os.path.join(folder, f"{v}.json"))]
    from tqdm import tqdm

    for vid in tqdm(todo, desc=f"bank rank {comm.get_rank()}", unit="video",
                    disable=not todo, file=sys.stdout):
        entries = [ex(d) for d in videos[vid]]
        write_video_bank(folder, vid, entries)
    comm.synchronize()
    return {"videos": len(videos), "written": len(todo), "record": record_path}


def run(argv=None):
    args = argument_parser().parse_args(argv)
    return launch(main, args.num_gpus, num_machines=args.num_machines,
                  machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    run_cli(run, prog="tools/extract_feature_bank.py")
