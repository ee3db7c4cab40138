"""Video sources decoded once (file, frame folder), their errors, and the timed buffer's clips
against the seek-per-clip reader."""
import os

import av
import numpy as np
import pytest
from PIL import Image

from acar_d2.data.video_io import clip_frame_indices, read_video_clip
from acar_d2.data.video_io import (FrameFolderSource, PyAVSource, TimedFrameBuffer,
                                   VideoSourceError, clip_times, open_video_source)
from tests.utils.demo_helpers import decode, moving_frames, write_test_video


def test_timed_buffer_serves_the_frames_on_screen_and_forgets_the_old():
    buf = TimedFrameBuffer()
    times = [0.0, 0.1, 0.15, 0.4, 0.5]  # variable rate
    for i, t in enumerate(times):
        assert buf.append(t, np.full((2, 2, 3), i, np.uint8)) == i
    clip = buf.gather([-1.0, 0.12, 0.39, 0.4, 7.0])  # before the start / after the end: clamped
    assert clip.shape == (5, 2, 2, 3) and clip[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]
    buf.drop_before(0.2)  # frame 2 (0.15 .. 0.4) is still on screen at 0.2
    assert (buf.start, buf.end, len(buf)) == (2, 5, 3) and buf.time_of(2) == 0.15
    with pytest.raises(IndexError, match="frame 1 is not in the buffer"):
        buf[1]
    with pytest.raises(VideoSourceError, match="timestamps must increase"):
        buf.append(0.45, np.zeros((2, 2, 3), np.uint8))


def test_file_source_decodes_every_frame_once(tmp_path):
    path = tmp_path / "v.mp4"
    write_test_video(path, n=20, fps=8)
    src = open_video_source(str(path))
    assert isinstance(src, PyAVSource)
    assert (src.fps, src.width, src.height, src.num_frames, src.is_live) == (8.0, 160, 120, 20, False)
    frames = list(src)
    assert len(frames) == 20 and src.frames_read == 20
    ref = decode(path)
    assert all(np.array_equal(a, b) for a, b in zip(frames, ref))


def test_decode_once_clips_equal_seek_reader_clips(tmp_path):
    """The timed buffer serves the same clips as the seek-per-key-frame reader."""
    path = str(tmp_path / "v.mp4")
    write_test_video(path, n=40, fps=8)
    T, rate, fps = 4, 2, 8.0
    after = rate * (T - 1) - (T * rate) // 2
    keys = [0, 8, 16, 24, 32]
    buf, done = TimedFrameBuffer(), {}
    for t, frame in open_video_source(path).timed_frames():  # PyAV frames, converted when gathered
        assert not isinstance(frame, np.ndarray)
        idx = buf.append(t, frame)
        for k in keys:
            if k not in done and (k + after == idx):
                done[k] = buf.gather(clip_times(k / fps, T, rate, fps))
    assert sorted(done) == [0, 8, 16, 24, 32]  # the last one exactly at the last frame
    for k in keys:
        seek = read_video_clip(path, clip_frame_indices(k, T, rate, 40), fps).permute(0, 2, 3, 1)
        assert np.array_equal(done[k], seek.numpy()), k


def test_missing_and_unreadable_sources_name_the_file(tmp_path):
    with pytest.raises(VideoSourceError, match="input video not found: .*nope.mp4"):
        open_video_source(str(tmp_path / "nope.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoSourceError, match="cannot open video source .*bad.mp4"):
        open_video_source(str(bad))


def truncated_video(tmp_path, n=48, keep=0.6):
    """An mp4 with its index in front (faststart) cut at ``keep`` of its bytes: it opens, announces
    n frames and breaks while decoding."""
    full = tmp_path / "full.mp4"
    frames = [np.random.RandomState(i).randint(0, 255, (120, 160, 3)).astype(np.uint8)
              for i in range(n)]
    with av.open(str(full), "w", options={"movflags": "faststart"}) as c:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        s = c.add_stream(codec, rate=8)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut


def test_truncated_video_yields_its_frames_then_a_clear_error(tmp_path):
    cut = truncated_video(tmp_path)
    src = open_video_source(str(cut))
    assert src.num_frames == 48
    got = []
    with pytest.raises(VideoSourceError, match=r"cut\.mp4.*truncated or corrupt"):
        for f in src:
            got.append(f)
    assert 0 < len(got) < 48 and src.frames_read == len(got)


def test_frame_folder_in_natural_order(tmp_path):
    frames = moving_frames(12)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):  # img_1 .. img_12: a plain sort would put img_10 second
        Image.fromarray(f).save(folder / f"img_{i + 1}.png")
    (folder / "notes.txt").write_text("not a frame")
    src = open_video_source(str(folder), fps=4)
    assert isinstance(src, FrameFolderSource)
    assert (src.fps, src.num_frames, src.width, src.height) == (4.0, 12, 160, 120)
    assert all(np.array_equal(a, b) for a, b in zip(src, frames))
    with pytest.raises(VideoSourceError, match="frame rate"):
        open_video_source(str(folder))
    Image.fromarray(frames[0][:60]).save(folder / "img_13.png")
    with pytest.raises(VideoSourceError, match="img_13.png is 160x60"):
        list(open_video_source(str(folder), fps=4))
