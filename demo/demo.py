#!/usr/bin/env python
"""
Demo: run an action detector on a video and write an annotated video (+ JSON, + AVA CSV).

    python demo/demo.py --config-file output/quickstart/config.yaml --input my_video.mp4 \\
        --output annotated.mp4 --json predictions.json --csv predictions.csv \\
        MODEL.WEIGHTS output/quickstart/model_final.pth
    python demo/demo.py --model ava_acar_r50 --input my_video.mp4 --output annotated.mp4 --json out.json

``--model NAME`` takes a model of the acar_d2 model zoo (docs/MODEL_ZOO.md) instead of
``--config-file``: its demo config (the action model + the COCO Faster R-CNN person detector) and
its published weights, fetched or found in the zoo folder (``$ACAR_MODEL_ZOO``).

``--input`` is a video file, a folder of frames (give ``--fps``), or anything FFmpeg opens as a
live source (``/dev/video0``, ``rtsp://...``, ``-`` for a pipe). Key frames every
``--key-frame-stride`` seconds (default 1, as AVA); the person boxes come from the model's person
detector (``MODEL.PERSON_DETECTOR``), or from ``--boxes`` (PySlowFast's predicted-box CSV
``video_id,timestamp,x1,y1,x2,y2,,score``, normalized, timestamp = seconds from the start; the video
id is the input's file name without extension unless ``--video-id``). ``--dataset NAME --video-id
ID`` annotates a video of a registered dataset at its key frames.

The output files are refused when they exist (``--overwrite`` replaces them, ``--resume`` continues
an interrupted run after its last key frame written: docs/DEMO.md) and always when one of them is
the input. Ctrl-C or a broken stream stops cleanly: the video written so far is finalised,
the JSON says ``"complete": false`` and why, the CSV holds the finished key frames; the exit status
is then 1 (130 on Ctrl-C).

A feature-bank model (ACFB / LFB heads) reads the video twice: first the model that wrote its
training bank (recorded in ``MODEL.FEATURE_BANK.DIR``, or ``--bank-extractor-config/-weights``)
writes the video's bank (``--bank-dir`` keeps it), then the bank model predicts. Not for live sources.
"""
import argparse
import logging
import os
import sys
from pathlib import Path

# The repository root first: `python demo/demo.py` puts demo/ itself on the path, where `demo`
# would be this file instead of the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from detectron2.data import DatasetCatalog  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from ava_eval.csv_io import read_predicted_boxes_csv  # noqa: E402
from acar_d2.data.video_io import (FrameFolderSource, VideoSourceError,  # noqa: E402
                                   is_live_source, open_video_source)
from acar_d2.data.clip_mapper import key_time  # noqa: E402
from acar_d2.engine import setup_cfg  # noqa: E402
from acar_d2.engine.video_predictor import (KeyFrameRequest, VideoActionPredictor,  # noqa: E402
                                            action_class_names)
from acar_d2.modeling import RelationRecorder  # noqa: E402
from acar_d2.utils.thresholds import read_thresholds  # noqa: E402
from demo.resume import ResumeError, leftover_files  # noqa: E402
from demo.predictor import annotate_source  # noqa: E402

logger = logging.getLogger("acar_d2.demo")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--config-file", help="the model's config (or --model)")
    parser.add_argument("--model", metavar="NAME", help="a model-zoo name instead of --config-file, "
                        "e.g. ava_acar_r50 (docs/MODEL_ZOO.md)")
    parser.add_argument("--input", help="video file, frame folder, device or URL")
    parser.add_argument("--output", required=True, help="annotated video file (.mp4)")
    parser.add_argument("--json", help="predictions as one JSON document (schema: docs/DEMO.md)")
    parser.add_argument("--csv", help="predictions in the AVA submission CSV format")
    parser.add_argument("--thresholds", help="per-class thresholds JSON "
                        "(tools/calibrate_thresholds.py); default: --score-thresh for all")
    parser.add_argument("--score-thresh", type=float, default=0.3,
                        help="label threshold of every class without --thresholds")
    parser.add_argument("--top-k", type=int, default=3, help="labels drawn per person at most")
    parser.add_argument("--key-frame-stride", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--fps", type=float, help="frame rate of a frame folder / live source")
    parser.add_argument("--boxes", help="person boxes CSV for --input (instead of the detector)")
    parser.add_argument("--dataset", help="a registered dataset (with --video-id)")
    parser.add_argument("--video-id", help="the video of --dataset; with --input: its id in the "
                        "CSV and in --boxes (default: the input's file name)")
    parser.add_argument("--bank-dir", help="feature-bank models (ACFB/LFB): keep the video's bank "
                        "here (reused when run again); default a temporary folder")
    parser.add_argument("--bank-extractor-config", help="feature-bank models: config of the model "
                        "that writes the bank (default: the one recorded in MODEL.FEATURE_BANK.DIR)")
    parser.add_argument("--bank-extractor-weights", help="feature-bank models: its weights "
                        "(default: the path recorded in MODEL.FEATURE_BANK.DIR)")
    parser.add_argument("--no-track", action="store_true", help="no track ids")
    parser.add_argument("--relations", action="store_true", help="relation maps (ACAR Fig. 6): "
                        "every actor's in the JSON, the top interaction actor's drawn (docs/DEMO.md)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run "
                        "(<output>.progress.json) after its last key frame written")
    parser.add_argument("--random-weights", action="store_true",
                        help="run without MODEL.WEIGHTS (random scores, for testing the pipeline)")
    parser.add_argument("--engine", choices=["pytorch", "onnxruntime", "openvino"],
                        default="pytorch", help="what runs the model: PyTorch, or the files of "
                        "--onnx in onnxruntime or OpenVINO")
    parser.add_argument("--onnx", metavar="DIR", help="--engine onnxruntime / openvino: the folder "
                        "written by tools/export_model.py for this config and frame size "
                        "(docs/EXPORT.md)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                        help="arithmetic of the action model and the person detector "
                             "(MODEL.INFERENCE.PRECISION; default the config's, fp32): bf16 on CPUs "
                             "with native bf16 (refused elsewhere), fp16 on CUDA")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the action backbone (MODEL.INFERENCE.COMPILE): ~10%% "
                             "faster after a first key frame that compiles (~100 s cold)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(_join_dash_values(sys.argv[1:] if argv is None else list(argv)))
    if args.precision:
        args.opts = list(args.opts) + ["MODEL.INFERENCE.PRECISION", args.precision]
    if args.compile:
        args.opts = list(args.opts) + ["MODEL.INFERENCE.COMPILE", "True"]
    return args


def _join_dash_values(argv):
    """``--video-id -FaXLcSFjUI`` -> ``--video-id=-FaXLcSFjUI``: AVA ids may start with a dash,
    which argparse would read as an option."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--video-id" and i + 1 < len(argv):
            out.append(f"--video-id={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(args, inputs) -> None:
    """Refuse an output that is an input, two equal outputs, or an existing file unasked."""
    outputs = [(flag, path) for flag, path in
               (("--output", args.output), ("--json", args.json), ("--csv", args.csv)) if path]
    for flag, path in outputs:
        for in_flag, in_path in inputs:
            if in_path and not is_live_source(in_path) and _same_file(path, in_path):
                sys.exit(f"{flag} {path} is the {in_flag} file: refusing to replace an input "
                         "(choose another output name)")
    for i, (flag, path) in enumerate(outputs):
        for flag2, path2 in outputs[i + 1:]:
            if _same_file(path, path2):
                sys.exit(f"{flag} and {flag2} name the same file {path}")
        if os.path.isdir(path):
            sys.exit(f"{flag} {path} is a folder: give a file name")
        if os.path.exists(path) and not (args.overwrite or args.resume):
            sys.exit(f"{flag} {path} exists: refusing to overwrite it (use --overwrite); "
                     "--resume continues an interrupted run")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            sys.exit(f"{flag} {path}: folder {folder} does not exist")
    leftovers = leftover_files(args.output)
    if args.overwrite and args.resume:
        sys.exit("--overwrite starts again, --resume continues: give one of them")
    if leftovers and not (args.overwrite or args.resume):
        sys.exit(f"{leftovers[0]} exists: an interrupted run of --output {args.output}; "
                 "--resume continues it, --overwrite starts again")


def dataset_key_frames(cfg, args):
    """(source, key frames, video id) of ``--dataset/--video-id``."""
    if not args.video_id:
        sys.exit("--dataset needs --video-id")
    all_dicts = DatasetCatalog.get(args.dataset)
    dicts = sorted((d for d in all_dicts if d["video_id"] == args.video_id),
                   key=lambda d: d["key_frame_index"])
    if not dicts:
        ids = sorted({d["video_id"] for d in all_dicts})
        shown = ", ".join(ids[:20]) + (f", ... ({len(ids)} in all)" if len(ids) > 20 else "")
        sys.exit(f"video {args.video_id!r} has no key frame in dataset {args.dataset!r}; "
                 f"its videos: {shown}")
    d0 = dicts[0]
    if cfg.INPUT.CLIP.SOURCE == "video" or not d0.get("frame_dir"):
        source = open_video_source(d0["video_file"], fps=d0["fps"])
    else:
        source = FrameFolderSource(d0["frame_dir"], d0["fps"], frame_template=d0["frame_template"],
                                   num_frames=d0["num_frames"])
    pd = cfg.MODEL.PERSON_DETECTOR
    use_file = not pd.NAME or pd.TEST_BOX_SOURCE == "file"
    requests = [KeyFrameRequest(key_time(d, d["fps"]), d["timestamp"],
                                d.get("proposals") if use_file else None)
                for d in dicts]
    return source, requests, args.video_id


def box_file_key_frames(args, source, video_id):
    """Key frames of the ``--boxes`` rows of ``video_id`` (pixels of ``source``)."""
    boxes = read_predicted_boxes_csv(args.boxes)
    by_second = {ts: b for (vid, ts), b in boxes.items() if vid == video_id}
    if not by_second:
        ids = sorted({vid for vid, _ in boxes})
        sys.exit(f"{args.boxes}: no rows for video id {video_id!r} (the input's file name; set "
                 f"--video-id otherwise); its video ids: {', '.join(ids[:10])}")
    scale = np.array([source.width, source.height] * 2, np.float32)
    requests = []
    for second, rows in sorted(by_second.items()):
        if source.duration is not None and second >= source.duration:
            sys.exit(f"{args.boxes}: boxes for second {second} of {video_id!r}, but {source.name} "
                     f"lasts {source.duration:.2f} s")
        rows = np.asarray(rows, np.float32).reshape(-1, 5)
        requests.append(KeyFrameRequest(float(second), int(second),
                                        {"boxes": rows[:, :4] * scale, "scores": rows[:, 4]}))
    return requests


def bank_extractor_cfg(cfg, args):
    """The bank-writing model's config from ``--bank-extractor-*`` (None: the predictor takes the
    one recorded in ``MODEL.FEATURE_BANK.DIR``)."""
    for flag, path in (("--bank-extractor-config", args.bank_extractor_config),
                       ("--bank-extractor-weights", args.bank_extractor_weights)):
        if path and not os.path.isfile(path):
            sys.exit(f"{flag}: file not found: {path}")
    if args.bank_extractor_config:
        if not args.bank_extractor_weights:
            sys.exit("--bank-extractor-config needs --bank-extractor-weights")
        return setup_cfg(args.bank_extractor_config, ["MODEL.WEIGHTS", args.bank_extractor_weights,
                                                      "MODEL.DEVICE", cfg.MODEL.DEVICE])
    if args.bank_extractor_weights:
        if not cfg.MODEL.FEATURE_BANK.DIR:
            sys.exit("--bank-extractor-weights without --bank-extractor-config needs "
                     "MODEL.FEATURE_BANK.DIR (its record names the extraction config)")
        from acar_d2.engine.bank_extraction import extractor_cfg_from_record

        return extractor_cfg_from_record(cfg.MODEL.FEATURE_BANK.DIR, args.bank_extractor_weights,
                                         device=cfg.MODEL.DEVICE)
    return None


def load_config(args):
    """The config of ``--config-file`` (+ overrides), or of the zoo model ``--model`` with its
    weight files (``acar_d2://`` URLs, fetched / found here so that a missing file stops the demo
    before any model is built; ``--random-weights``: none)."""
    if bool(args.config_file) == bool(args.model):
        sys.exit("give either --config-file or --model (a model-zoo name, docs/MODEL_ZOO.md)")
    if args.config_file:
        return setup_cfg(args.config_file, args.opts)
    from detectron2.utils.file_io import PathManager

    from acar_d2 import model_zoo

    try:
        cfg = model_zoo.get_config(args.model, trained=not args.random_weights, demo=True,
                                   opts=args.opts)
        for url in (cfg.MODEL.WEIGHTS, cfg.MODEL.PERSON_DETECTOR.WEIGHTS):
            if url.startswith(model_zoo.ZOO_URL_PREFIX):
                PathManager.get_local_path(url)
    except (KeyError, FileNotFoundError, model_zoo.DownloadError) as e:
        sys.exit(str(e).strip("'\""))
    cfg.freeze()
    return cfg


def model_info(args, cfg) -> dict:
    """The JSON's ``"model"``: config and weights; with an exported engine, also the folder."""
    info = {"config": args.config_file or f"model zoo: {args.model}", "weights": cfg.MODEL.WEIGHTS}
    if args.engine != "pytorch":
        info.update(engine=args.engine, onnx=args.onnx)
    return info


def check_engine(args) -> None:
    """``--engine onnxruntime / openvino`` needs ``--onnx DIR`` (an export folder) and runs no
    relation maps."""
    if args.engine != "pytorch":
        if not args.onnx:
            sys.exit(f"--engine {args.engine} needs --onnx DIR, a folder written by "
                     "tools/export_model.py")
        if not os.path.isdir(args.onnx):
            sys.exit(f"--onnx: folder not found: {args.onnx}")
        if args.relations:
            sys.exit("--relations reads the attention inside the PyTorch head: not available "
                     f"with --engine {args.engine}")
    elif args.onnx:
        sys.exit("--onnx is read by --engine onnxruntime or openvino: add one (or leave --onnx "
                 "out)")


def main(argv=None) -> int:
    """The demo command; one demo per ``--output`` (``<output>.lock``, docs/SAFETY.md): a second
    one on the same file is refused at once, naming the first one's pid and command line."""
    args = parse_args(argv)
    setup_logger(name="acar_d2")
    from contextlib import nullcontext

    from acar_d2.utils.output_lock import hold_output_file

    # A missing output folder is check_outputs' refusal, not created for the lock file.
    folder = os.path.dirname(os.path.abspath(args.output))
    with hold_output_file(args.output, "--output") if os.path.isdir(folder) else nullcontext():
        return annotate(args)


def annotate(args) -> int:
    """main() once ``--output`` is held: check the arguments, load the model, annotate."""
    if not args.dataset and not args.input:
        sys.exit("give --input (a video, frame folder, device or URL), or --dataset and --video-id")
    if args.input and not is_live_source(args.input) and not os.path.exists(args.input):
        sys.exit(f"--input: input video not found: {args.input}")
    if args.boxes and not os.path.isfile(args.boxes):
        sys.exit(f"--boxes: file not found: {args.boxes}")
    check_outputs(args, [("--input", args.input), ("--boxes", args.boxes),
                         ("--thresholds", args.thresholds), ("--config-file", args.config_file)])
    if args.csv and abs(args.key_frame_stride - round(args.key_frame_stride)) > 1e-9:
        sys.exit(f"--csv needs key frames on whole seconds (AVA timestamps are integer seconds); "
                 f"--key-frame-stride is {args.key_frame_stride}")
    if os.path.isdir(args.input or "") and not args.fps:
        sys.exit(f"--input {args.input} is a frame folder: give its frame rate with --fps")
    check_engine(args)
    cfg = load_config(args)
    if not cfg.MODEL.WEIGHTS and not args.random_weights and not args.onnx:
        sys.exit("MODEL.WEIGHTS is not set: the demo would draw the labels of an untrained model. "
                 "Add `MODEL.WEIGHTS path/to/model_final.pth` (or --random-weights to test the "
                 "pipeline on purpose)")
    if not cfg.MODEL.PERSON_DETECTOR.NAME and not (args.boxes or args.dataset):
        sys.exit(f"{args.config_file or args.model} has no person detector (MODEL.PERSON_DETECTOR.NAME is empty): "
                 "give person boxes with --boxes, or use a config with a detector")

    try:
        thresholds = (read_thresholds(args.thresholds, action_class_names(cfg), args.score_thresh)
                      if args.thresholds else args.score_thresh)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(str(e))
    try:
        if args.dataset:
            source, requests, video_id = dataset_key_frames(cfg, args)
        else:
            source = open_video_source(args.input, fps=args.fps)
            video_id = args.video_id or os.path.splitext(
                os.path.basename(args.input.rstrip("/")))[0]
            requests = box_file_key_frames(args, source, video_id) if args.boxes else None
    except VideoSourceError as e:
        sys.exit(str(e))

    try:
        predictor = VideoActionPredictor(cfg, key_frame_stride=args.key_frame_stride, fps=args.fps,
                                         track=not args.no_track,
                                         allow_random_weights=args.random_weights,
                                         bank_extractor=bank_extractor_cfg(cfg, args),
                                         bank_dir=args.bank_dir, onnx_dir=args.onnx,
                                         onnx_engine=args.engine)
        if args.relations:
            RelationRecorder(predictor.model)  # refuses a model without relation maps
    except (ValueError, FileNotFoundError, NotImplementedError) as e:
        sys.exit(str(e))
    try:
        result = annotate_source(
            predictor, source, args.output, json_file=args.json, csv_file=args.csv,
            thresholds=thresholds, top_k=args.top_k, key_frames=requests, video_id=video_id,
            progress=not args.no_progress, resume=args.resume,
            model_info=model_info(args, cfg),
            relations=args.relations,
        )
    except ResumeError as e:
        sys.exit(str(e))
    written = [p for p in (args.output, args.json, args.csv) if p and os.path.exists(p)]
    print(f"{result.key_frames} key frames, {result.frames} frames: {', '.join(written) or 'nothing written'}")
    if result.error:
        print(f"stopped early: {result.error}", file=sys.stderr)
        return 130 if result.error.startswith("interrupted") else 1
    return 0


if __name__ == "__main__":
    from acar_d2.engine.cli import run_cli

    run_cli(main, prog="demo/demo.py")  # one-line errors, exit status 2 (--debug: traceback)
