#!/usr/bin/env python
"""
Clip-loading throughput: frame folders and video files, 1 and 2 DataLoader workers, and the whole
``ClipDatasetMapper``, against a straightforward PIL-per-frame loader (the baseline).

Generates its own data in a temp dir: videos of 340x455 JPEG frames (AVA's usual size) and the
same frames as mp4, with moving content so the codecs do real work. Clips are 32 frames at
stride 2 (ACAR-Net 32x2), resized to a 256 short side in the mapper rows.

    python tools/benchmarks/benchmark_data.py --clips 24 --videos 2
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from acar_d2.data.clip_mapper import ClipDatasetMapper  # noqa: E402
from acar_d2.data.video_io import ClipReader, clip_frame_indices  # noqa: E402
from acar_d2.data.video_io import write_video  # noqa: E402

H, W, FPS, T, RATE = 340, 455, 30, 32, 2


def make_data(root: str, num_videos: int, num_frames: int) -> list:
    """Write frames + mp4 per video; return one dataset dict per key frame (every second)."""
    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[0:H, 0:W]
    dicts = []
    for v in range(num_videos):
        vid = f"bench{v}"
        os.makedirs(os.path.join(root, "frames", vid))
        texture = rng.randint(0, 255, (H, W, 3)).astype(np.float32)
        frames = []
        for k in range(num_frames):
            shift = 3 * k
            img = 0.5 * np.roll(texture, shift, axis=1) + 60 * (1 + np.sin((xx + yy + 5 * k) / 20.0))[..., None]
            img = np.clip(img, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(os.path.join(root, "frames", vid, f"{vid}_{k + 1:06d}.jpg"), quality=90)
            frames.append(img)
        os.makedirs(os.path.join(root, "videos"), exist_ok=True)
        video_file = os.path.join(root, "videos", f"{vid}.mp4")
        write_video(video_file, frames, FPS)
        for key in range(T, num_frames - T, FPS // 2):
            dicts.append({
                "video_id": vid, "timestamp": key // FPS, "frame_dir": os.path.join(root, "frames", vid),
                "frame_template": vid + "_{:06d}.jpg", "video_file": video_file, "fps": float(FPS),
                "key_frame_index": key, "num_frames": num_frames, "height": H, "width": W,
                "annotations": [], "proposals": None,
            })
    return dicts


class PILBaseline(torch.utils.data.Dataset):
    """Straightforward loader: PIL.open + convert + asarray for each of the 32 frames."""

    def __init__(self, dicts):
        self.dicts = dicts

    def __len__(self):
        return len(self.dicts)

    def __getitem__(self, i):
        d = self.dicts[i]
        idx = clip_frame_indices(d["key_frame_index"], T, RATE, d["num_frames"])
        frames = [np.asarray(Image.open(os.path.join(d["frame_dir"], d["frame_template"].format(k + 1))).convert("RGB"))
                  for k in idx]
        return torch.from_numpy(np.stack(frames))


class ReaderDataset(torch.utils.data.Dataset):
    def __init__(self, dicts, fn):
        self.dicts, self.fn = dicts, fn

    def __len__(self):
        return len(self.dicts)

    def __getitem__(self, i):
        return self.fn(self.dicts[i])


def read_with(reader):
    def fn(d):
        return reader(d, clip_frame_indices(d["key_frame_index"], T, RATE, d["num_frames"]))
    return fn


def as_video_dicts(dicts):
    """The encoder crops odd sizes to even ones (yuv420p): the mp4 frames are 340x454."""
    return [dict(d, height=H - H % 2, width=W - W % 2) for d in dicts]


def throughput(dataset, workers: int, num_clips: int) -> float:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers,
        sampler=[i % len(dataset) for i in range(num_clips)],
    )
    it = iter(loader)
    next(it)  # warm-up: worker start and first clip are not timed
    t0 = time.perf_counter()
    n = 0
    for _ in it:
        n += 1
    return n / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--clips", type=int, default=24, help="clips timed per row")
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--frames", type=int, default=150, help="frames per generated video")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:
        dicts = make_data(root, args.videos, args.frames)
        mapper_frames = ClipDatasetMapper(False, action_ids=[1], num_frames=T, sampling_rate=RATE,
                                          short_side=256, reader=ClipReader("frames"))
        mapper_video = ClipDatasetMapper(False, action_ids=[1], num_frames=T, sampling_rate=RATE,
                                         short_side=256, reader=ClipReader("video"))
        rows = [
            ("baseline PIL per frame", PILBaseline(dicts)),
            ("frame folder (decode_jpeg)", ReaderDataset(dicts, read_with(ClipReader("frames")))),
            ("frame folder, 2 threads", ReaderDataset(dicts, read_with(ClipReader("frames", 2)))),
            ("video file (PyAV seek)", ReaderDataset(as_video_dicts(dicts), read_with(ClipReader("video")))),
            ("mapper: frames -> 256 clip", ReaderDataset(dicts, mapper_frames)),
            ("mapper: video -> 256 clip", ReaderDataset(as_video_dicts(dicts), mapper_video)),
        ]
        print(f"{T}x{RATE} clips of {H}x{W} frames, {len(dicts)} key frames, {args.clips} clips per row, "
              f"{os.cpu_count()} CPUs")
        head = "| loader | " + " | ".join(f"{w} worker{'s' if w > 1 else ''} clips/s | ratio" for w in args.workers) + " |"
        print(head)
        print("|---|" + "---:|---:|" * len(args.workers))
        base = {}
        for name, ds in rows:
            cells = []
            for w in args.workers:
                r = throughput(ds, w, args.clips)
                base.setdefault(w, r)
                cells.append(f"{r:.2f} | {r / base[w]:.2f}x")
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
