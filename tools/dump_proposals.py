#!/usr/bin/env python
"""
Run the person detector of a config (``MODEL.PERSON_DETECTOR``) over the key frames of a registered
dataset, or over video files sampled every N seconds, and write the person boxes in the formats the
loaders read (``acar_d2/data/datasets/ava.py``):

* ``--csv``: PySlowFast predicted-box CSV ``video_id,timestamp,x1,y1,x2,y2,,score`` (normalized);
* ``--pkl``: the ACAR-Net / LFB dense-proposal pickle ``{"video_id,%04d": (R, 5) [x1,y1,x2,y2,score]}``.

Examples::

    python tools/dump_proposals.py --config-file configs/Synthetic/acar_detector_SLOWFAST_R18_1.5k_aca_world.yaml \\
        --dataset aca_world_val --csv val_boxes.csv --pkl val_boxes.pkl MODEL.WEIGHTS model_final.pth
    python tools/dump_proposals.py --config-file CONFIG --video a.mp4 b.mp4 --every 1 --csv boxes.csv \\
        MODEL.PERSON_DETECTOR.NAME PersonDetector \\
        MODEL.PERSON_DETECTOR.CONFIG_FILE COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml \\
        MODEL.PERSON_DETECTOR.WEIGHTS detectron2://COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl

Long runs: each video's boxes go to ``<work dir>/<video>.pkl`` as soon as it is done, and a re-run
skips finished videos (resumable); ``--num-gpus N`` starts N processes (detectron2 ``launch``) that
split the videos; the outputs are written once all videos are done and are never overwritten
without ``--overwrite``. Boxes with a score below ``--score-thresh`` (default 0.05) are dropped:
proposal files keep low scores, the loaders' / model's thresholds apply later. A second dump
writing the same file while one runs is refused at once (``<output>.lock``).
"""
import argparse
import logging
import os
import pickle
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

logger = logging.getLogger("acar_d2.dump_proposals")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="acar_d2 config with MODEL.PERSON_DETECTOR")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="registered dataset: its key frames")
    src.add_argument("--video", nargs="+", help="video files (PyAV), sampled every --every seconds")
    p.add_argument("--every", type=int, default=1, help="video mode: seconds between key frames")
    p.add_argument("--csv", help="output PySlowFast predicted-box CSV")
    p.add_argument("--pkl", help="output ACAR-Net / LFB dense-proposal pickle")
    p.add_argument("--work-dir", help="per-video partial results (default: <first output>.work)")
    p.add_argument("--score-thresh", type=float, default=0.05, help="drop boxes below this score")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--num-gpus", type=int, default=1, help="processes (GPUs, or CPU processes)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    from acar_d2.engine.cli import add_debug_flag

    add_debug_flag(p)
    args = p.parse_args(argv)
    if not args.csv and not args.pkl:
        p.error("give --csv and/or --pkl")
    return args


def _key_frames_of_dataset(name: str) -> Dict[str, List[dict]]:
    from detectron2.data import DatasetCatalog

    videos: Dict[str, List[dict]] = {}
    for d in DatasetCatalog.get(name):
        videos.setdefault(str(d["video_id"]), []).append(d)
    return videos


def _video_key_frames(path: str, every: int):
    """(timestamp s, RGB frame) of a video every ``every`` seconds (first frame at or after t)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        next_t = 0
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            if t + 1e-6 >= next_t:
                yield next_t, frame.to_ndarray(format="rgb24")
                next_t += every


def detect_video(detector, frames, score_thresh: float) -> Dict[str, np.ndarray]:
    """``{"video,%04d": (R, 5) normalized x1, y1, x2, y2, score}`` for (key, timestamp, frame)."""
    from acar_d2.data.detection_utils import detector_image

    aug = detector.augmentation(False)
    out = {}
    for video_id, ts, frame in frames:
        h, w = frame.shape[:2]
        image, _ = detector_image(frame, aug, detector.input_format)
        inst = detector.detect([image], [(h, w)], score_thresh=score_thresh)[0].to("cpu")
        boxes = inst.proposal_boxes.tensor.numpy() / np.array([w, h, w, h], np.float32)
        arr = np.concatenate([np.clip(boxes, 0, 1), inst.scores.numpy()[:, None]], 1)
        out[f"{video_id},{int(ts):04d}"] = arr.astype(np.float32).reshape(-1, 5)
    return out


def _video_work_file(work: Path, video_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in video_id)
    return work / f"{safe}.pkl"


def run(args) -> Tuple[int, int]:
    """Process this rank's videos; the main process then merges. Returns (videos done, skipped)."""
    from detectron2.utils import comm

    import acar_d2  # noqa: F401  (registers datasets)
    from acar_d2.checkpoint import ACARCheckpointer, load_person_detector_weights
    from acar_d2.data.video_io import ClipReader
    from acar_d2.engine import setup_cfg
    from acar_d2.modeling.person_detector import build_person_detector

    cfg = setup_cfg(args.config_file, args.opts)
    if not cfg.MODEL.PERSON_DETECTOR.NAME:
        raise ValueError(f"{args.config_file}: MODEL.PERSON_DETECTOR.NAME is empty, no detector")
    outputs = [o for o in (args.csv, args.pkl) if o]
    existing = [o for o in outputs if os.path.exists(o)]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing} exist; pass --overwrite to replace them")
    work = Path(args.work_dir or (outputs[0] + ".work"))
    work.mkdir(parents=True, exist_ok=True)

    if cfg.MODEL.WEIGHTS:
        # an ACARNet checkpoint: the whole model is loaded as for evaluation (strict: a file
        # without person_detector.* keys is an error, not a silently untrained detector)
        from detectron2.modeling import build_model

        model = build_model(cfg)
        ACARCheckpointer.from_config(model, cfg, purpose="eval").load(cfg.MODEL.WEIGHTS)
        detector = model.person_detector
    else:  # MODEL.PERSON_DETECTOR.WEIGHTS (a detectron2 file) or nothing
        detector = build_person_detector(cfg)
        if cfg.MODEL.PERSON_DETECTOR.WEIGHTS:
            load_person_detector_weights(detector, cfg.MODEL.PERSON_DETECTOR.WEIGHTS)
    detector.eval()

    if args.dataset:
        videos = _key_frames_of_dataset(args.dataset)
        reader = ClipReader(cfg.INPUT.CLIP.SOURCE)

        def frames_of(vid):
            for d in videos[vid]:
                clip = reader(d, np.array([d["key_frame_index"]]))
                yield vid, d["timestamp"], clip[0].permute(1, 2, 0).numpy()
    else:
        videos = {Path(v).stem: v for v in args.video}

        def frames_of(vid):
            for ts, frame in _video_key_frames(videos[vid], args.every):
                yield vid, ts, frame

    names = sorted(videos)
    mine = names[comm.get_rank()::comm.get_world_size()]
    done = skipped = 0
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    it = tqdm(mine, desc=f"rank {comm.get_rank()} videos", unit="video") if tqdm else mine
    for i, vid in enumerate(it):
        path = _video_work_file(work, vid)
        if path.is_file():
            skipped += 1
            continue
        with torch.no_grad():
            result = detect_video(detector, frames_of(vid), args.score_thresh)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(result, f)
        os.replace(tmp, path)  # a video is either complete or absent
        done += 1
        if tqdm is None:
            logger.info("video %d/%d (%s): %d key frames", i + 1, len(mine), vid, len(result))
    comm.synchronize()
    if comm.is_main_process():
        from acar_d2.checkpoint import read_pickle_safely

        merged = {}
        for vid in names:
            # Plain data only (arrays and strings): a planted work file cannot run code.
            merged.update(read_pickle_safely(str(_video_work_file(work, vid)), "dump_proposals work file"))
        write_outputs(merged, args.csv, args.pkl)
    return done, skipped


def write_outputs(boxes: Dict[str, np.ndarray], csv_path=None, pkl_path=None) -> None:
    """Write ``{"video,%04d": (R, 5)}`` as the PySlowFast CSV and / or the dense-proposal pickle."""
    def order(k):
        v, t = k.rsplit(",", 1)
        return v, int(t)

    keys = sorted(boxes, key=order)
    if csv_path:
        tmp = csv_path + ".tmp"
        with open(tmp, "w") as f:
            for k in keys:
                v, t = order(k)
                for x1, y1, x2, y2, s in boxes[k]:
                    f.write(f"{v},{t:04d},{x1:.6f},{y1:.6f},{x2:.6f},{y2:.6f},,{s:.6f}\n")
        os.replace(tmp, csv_path)
    if pkl_path:
        tmp = pkl_path + ".tmp"
        with open(tmp, "wb") as f:
            pickle.dump({k: boxes[k] for k in keys}, f)
        os.replace(tmp, pkl_path)
    logger.info("wrote %d key frames to %s", len(keys), [p for p in (csv_path, pkl_path) if p])


def main(argv=None):
    args = parse_args(argv)
    from contextlib import ExitStack

    from detectron2.engine import launch
    from detectron2.utils.logger import setup_logger

    from acar_d2.utils.output_lock import hold_output_file

    setup_logger(name="acar_d2")
    with ExitStack() as held:  # one dump per output file, for the whole run
        for flag, path in (("--csv", args.csv), ("--pkl", args.pkl)):
            if path:
                held.enter_context(hold_output_file(path, flag))
        launch(_worker, args.num_gpus, args=(args,))


def _worker(args):
    from detectron2.utils.logger import setup_logger

    setup_logger(name="acar_d2")
    return run(args)


if __name__ == "__main__":
    from acar_d2.engine.cli import run_cli

    run_cli(main, prog="tools/dump_proposals.py")
