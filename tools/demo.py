#!/usr/bin/env python
"""
Demo: turn a video into an annotated video (person boxes + top action labels with scores).

Two ways to name the input:

* a registered dataset and one of its videos (person boxes = the dataset's proposals)::

    python tools/demo.py --config-file configs/Synthetic/acar_SLOWFAST_R18_1.5k_aca_world.yaml \
        --dataset aca_world_val --video-id acaw_0048 --output out.mp4 \
        MODEL.WEIGHTS output/quickstart/model_final.pth

* any video file plus person boxes in PySlowFast's predicted-box CSV
  (``video_id,timestamp,x1,y1,x2,y2,,score``, normalized; ``timestamp`` in seconds from the start)::

    python tools/demo.py --config-file CONFIG --input movie.mp4 --boxes boxes.csv --output out.mp4 \
        MODEL.WEIGHTS model.pth

The person detector that finds the boxes by itself joins the meta-architecture in a later release;
until then the boxes come from a file.
"""
import argparse
import os
import sys

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.logger import setup_logger

from acar_d2.data.datasets.ava import read_predicted_boxes_csv
from acar_d2.engine import ActionPredictor, setup_cfg
from acar_d2.utils.demo import annotate_video, video_keyframe_dicts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--input", help="a video file (with --boxes)")
    parser.add_argument("--boxes", help="person boxes CSV for --input")
    parser.add_argument("--dataset", help="a registered dataset (with --video-id)")
    parser.add_argument("--video-id", help="the video of --dataset to annotate")
    parser.add_argument("--output", required=True, help="annotated video file (.mp4)")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--score-thresh", type=float, default=0.2)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="acar_d2")
    cfg = setup_cfg(args.config_file, args.opts)

    if args.dataset:
        if not args.video_id:
            sys.exit("--dataset needs --video-id")
        all_dicts = DatasetCatalog.get(args.dataset)
        dicts = [d for d in all_dicts if d["video_id"] == args.video_id]
        if not dicts:
            ids = sorted({d["video_id"] for d in all_dicts})
            shown = ", ".join(ids[:20]) + (f", ... ({len(ids)} in all)" if len(ids) > 20 else "")
            sys.exit(f"video {args.video_id!r} has no key frame in dataset {args.dataset!r}; "
                     f"its videos: {shown}")
        names = MetadataCatalog.get(args.dataset).action_classes
        source = cfg.INPUT.CLIP.SOURCE
    elif args.input and args.boxes:
        video_id = os.path.splitext(os.path.basename(args.input))[0]
        boxes = read_predicted_boxes_csv(args.boxes)
        by_second = {ts: b for (vid, ts), b in boxes.items() if vid == video_id}
        if not by_second:
            sys.exit(f"{args.boxes}: no rows for video id {video_id!r} (the input's file name)")
        dicts = video_keyframe_dicts(args.input, video_id, by_second)
        dataset = cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else cfg.DATASETS.TRAIN[0]
        names = MetadataCatalog.get(dataset).action_classes
        source = "video"
    else:
        sys.exit("give --dataset and --video-id, or --input and --boxes")

    predictor = ActionPredictor(_with_source(cfg, source))
    annotate_video(predictor, dicts, names, args.output, source=source,
                   top_k=args.top_k, score_thresh=args.score_thresh)
    print(f"annotated video: {args.output}")


def _with_source(cfg, source):
    cfg = cfg.clone()
    cfg.defrost()
    cfg.INPUT.CLIP.SOURCE = source
    cfg.freeze()
    return cfg


if __name__ == "__main__":
    main()
