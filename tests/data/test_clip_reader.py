"""Clip reading: TemporalCenterCrop indices, frame folders and PyAV video files, bad input."""
import os

import numpy as np
import pytest
import torch

from acar_d2.data.video_io import (
    ClipReader,
    clip_frame_indices,
    read_frame_folder_clip,
    read_video_clip,
    video_frame_count_and_size,
)

from . import ava_fixtures as fx


def test_center_crop_indices_known_answers():
    # Official 32x2: the 64-frame window starts at key - 32.
    idx = clip_frame_indices(100, 32, 2, 1000)
    np.testing.assert_array_equal(idx, np.arange(68, 132, 2))
    assert idx[16] == 100
    # Clamped at both ends of the video.
    np.testing.assert_array_equal(clip_frame_indices(1, 4, 2, 10), [0, 0, 1, 3])
    np.testing.assert_array_equal(clip_frame_indices(9, 4, 2, 10), [5, 7, 9, 9])
    with pytest.raises(ValueError, match="outside the video"):
        clip_frame_indices(10, 4, 2, 10)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return fx.make_ava_world(tmp_path_factory.mktemp("reader"), with_videos=True)


def _frame_values(clip: torch.Tensor) -> list:
    """Gray value of each frame, read at a pixel outside the white box."""
    return [int(round(float(v))) for v in clip[:, 0, -1, -1]]


@pytest.mark.parametrize("threads", [0, 2])
def test_frame_folder_reads_the_right_frames(world, threads):
    frame_dir = os.path.join(world["frames"], "vidA")
    idx = [0, 0, 3, 7, 15]
    clip = read_frame_folder_clip(frame_dir, "vidA_{:06d}.jpg", idx, threads)
    assert clip.shape == (5, 3, 24, 32) and clip.dtype == torch.uint8
    got = _frame_values(clip)
    assert all(abs(g - fx.frame_value(k)) <= 2 for g, k in zip(got, idx)), got


def test_video_file_matches_frames(world):
    video = os.path.join(world["videos"], "vidA.mp4")
    assert video_frame_count_and_size(video) == (fx.NUM_FRAMES, 24, 32)
    idx = [9, 11, 13, 15]  # needs a seek into the middle of the video
    clip = read_video_clip(video, idx, fx.FPS)
    assert clip.shape == (4, 3, 24, 32)
    got = _frame_values(clip)
    assert all(abs(g - fx.frame_value(k)) <= 4 for g, k in zip(got, idx)), got
    frames = read_frame_folder_clip(os.path.join(world["frames"], "vidA"), "vidA_{:06d}.jpg", idx)
    # Lossy codecs: the mean absolute difference stays small.
    assert (clip.float() - frames.float()).abs().mean() < 6


def test_clip_reader_dispatch_and_missing_keys(world):
    d = {"video_id": "vidA", "timestamp": 900, "frame_dir": None, "frame_template": None,
         "video_file": os.path.join(world["videos"], "vidA.mp4"), "fps": fx.FPS}
    assert ClipReader("video")(d, [0, 1]).shape == (2, 3, 24, 32)
    with pytest.raises(KeyError, match="needs 'frame_dir'.*vidA,900"):
        ClipReader("frames")(d, [0])
    with pytest.raises(ValueError, match="'frames' or 'video'"):
        ClipReader("gif")


def test_missing_and_corrupt_frames(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    with pytest.raises(FileNotFoundError, match=r"v_000001.jpg"):
        read_frame_folder_clip(str(d), "v_{:06d}.jpg", [0])
    (d / "v_000001.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(ValueError, match=r"corrupt or unreadable frame .*v_000001.jpg"):
        read_frame_folder_clip(str(d), "v_{:06d}.jpg", [0])


def test_missing_corrupt_and_short_videos(world, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.mp4"):
        read_video_clip(str(tmp_path / "nothere.mp4"), [0], 4)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(2000))
    with pytest.raises(ValueError, match="corrupt or unreadable video .*bad.mp4"):
        read_video_clip(str(bad), [0], 4)
    with pytest.raises(ValueError, match=r"vidA.mp4: frames \[16, 17\] could not be decoded"):
        read_video_clip(os.path.join(world["videos"], "vidA.mp4"), [15, 16, 17], fx.FPS)
    # Truncated file: the tail frames are missing -> error, not a shorter clip.
    data = open(os.path.join(world["videos"], "vidA.mp4"), "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.mp4"):
        read_video_clip(str(cut), list(range(16)), fx.FPS)
