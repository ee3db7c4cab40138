#!/usr/bin/env python
"""
Extract AVA frames from the movies with PyAV: ``frames/<video_id>/<video_id>_%06d.jpg`` at 30 fps
from second 900 to 1800 (1-based names; 0-based frame k shows time 900 + k / 30 s), and a
PySlowFast frame list covering them.

    python datasets/prepare_ava.py --videos datasets/ava/videos --out datasets/ava/frames \
        --frame-list datasets/ava/frame_lists/train.csv [--ids train_ids.txt]
"""
import argparse
import os

import av

FPS, START, END = 30, 900, 1800  # AVA annotates minutes 15-30 of each movie (AVA v2 release)


def extract(video_file: str, out_dir: str, video_id: str) -> int:
    """Write the frames of one movie; returns the number written. Nearest-frame resampling."""
    os.makedirs(out_dir, exist_ok=True)
    n_total = (END - START) * FPS
    written = 0
    with av.open(video_file) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        container.seek(int(START / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            # Every 30 fps slot up to half a slot after this frame's time gets this frame
            # (nearest-frame resampling for movies that are not exactly 30 fps).
            while written < n_total and START + written / FPS <= t + 0.5 / FPS:
                frame.to_image().save(
                    os.path.join(out_dir, f"{video_id}_{written + 1:06d}.jpg"), quality=90
                )
                written += 1
            if written >= n_total:
                break
    if written == 0:
        raise ValueError(f"{video_file}: no frames after second {START}")
    return written


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--videos", required=True, help="folder of <video_id>.<ext> movies")
    p.add_argument("--out", required=True, help="frames folder to write")
    p.add_argument("--frame-list", help="PySlowFast frame list to write")
    p.add_argument("--ids", help="text file of video ids to extract (default: all movies)")
    args = p.parse_args()
    files = {os.path.splitext(f)[0]: os.path.join(args.videos, f) for f in os.listdir(args.videos)}
    ids = sorted(files)
    if args.ids:
        with open(args.ids) as f:
            ids = [line.strip() for line in f if line.strip()]
        missing = [i for i in ids if i not in files]
        if missing:
            raise FileNotFoundError(f"movies not found in {args.videos}: {missing[:5]}")
    lines = ["original_vido_id video_idx frame_id path labels"]
    for idx, vid in enumerate(ids):
        n = extract(files[vid], os.path.join(args.out, vid), vid)
        lines += [f"{vid} {idx} {k} {vid}/{vid}_{k + 1:06d}.jpg \"\"" for k in range(n)]
        print(f"{vid}: {n} frames")
    if args.frame_list:
        os.makedirs(os.path.dirname(os.path.abspath(args.frame_list)), exist_ok=True)
        with open(args.frame_list, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
