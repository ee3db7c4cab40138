"""Time, not frames: the same pictures over time, recorded at another frame rate (constant or
variable), give the model the same clips at the same key-frame seconds, and the demo the same
predictions, with the annotated video keeping the source's timing.

The pictures: 10 s at 8 fps (the synthetic model's own rate), a bar in the top rows moving every
picture (a frame from another time is visible), written losslessly as
A: 8 fps; B: 24 fps, every picture shown 3 times; C: variable rate, every picture shown for its
1/8 s split into 1-4 frames at millisecond times; a 30 vs 60 fps pair; frame folders at 8 and 16 fps.
"""
import json

import numpy as np
import pytest
import torch

from acar_d2.data.video_io import (FrameFolderSource, PyAVSource, VideoWriter, clip_time_offsets,
                                   frame_folder_indices, frames_on_screen)
from acar_d2.engine import VideoActionPredictor, setup_cfg
from acar_d2.engine.video_predictor import KeyFrameRequest, key_frame_schedule
from demo.predictor import annotate_source
from tests.utils.demo_helpers import BOXES_CONFIG, BOXES_OPTS, decode, moving_frames, saved_model

SECONDS, RATE = 10, 8
BOX = {"boxes": np.array([[20.0, 30, 60, 100], [90, 20, 140, 110]], np.float32),
       "scores": np.array([0.9, 0.8], np.float32)}


def pictures(n=SECONDS * RATE):
    """n pictures; picture i has a 2 px white bar at x = 2 i in its top 4 rows."""
    out = []
    for i, f in enumerate(moving_frames(n)):
        f = f.copy()
        f[:4] = 0
        f[:4, 2 * i:2 * i + 2] = 255
        out.append(f)
    return out


def picture_ids(clip_frames):
    """The picture number of each (H, W, 3) frame, read back from its bar."""
    return [int(np.argmax(f[1, :, 0])) // 2 for f in clip_frames]


def write(path, frames_and_times):
    with VideoWriter(str(path), RATE, crf=0, b_frames=False) as w:
        for frame, t in frames_and_times:
            w.write(frame, t)


def variable_rate_times(n, seed=0):
    """(picture index, time) of every frame of C: picture i from i/8 s, in 1-4 pieces (ms)."""
    rng = np.random.RandomState(seed)
    out = []
    for i in range(n):
        m = rng.randint(1, 5)
        out += [(i, (i * 125 + round(j * 125 / m)) / 1000) for j in range(m)]
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("time")
    pics = pictures()
    paths = {k: tmp / f"{k}.mp4" for k in "ABC"}
    write(paths["A"], [(p, i / 8) for i, p in enumerate(pics)])
    write(paths["B"], [(pics[i // 3], i / 24) for i in range(3 * len(pics))])
    vfr = variable_rate_times(len(pics))
    write(paths["C"], [(pics[i], t) for i, t in vfr])
    long_pics = pictures(80) * 2  # 4 s of pictures at 30 / 60 fps
    paths["30"], paths["60"] = tmp / "p30.mp4", tmp / "p60.mp4"
    write(paths["30"], [(long_pics[i], i / 30) for i in range(120)])
    write(paths["60"], [(long_pics[i // 2], i / 60) for i in range(240)])
    from PIL import Image

    for name, repeat in (("f8", 1), ("f16", 2)):
        folder = tmp / name
        folder.mkdir()
        for i in range(repeat * len(pics)):
            Image.fromarray(pics[i // repeat]).save(folder / f"{i + 1:05d}.png")
        paths[name] = folder
    weights = saved_model(BOXES_CONFIG, BOXES_OPTS, tmp)
    return {"paths": paths, "vfr": vfr, "weights": weights, "pictures": pics}


def predictor_of(videos, *opts, **kwargs):
    cfg = setup_cfg(BOXES_CONFIG, BOXES_OPTS + ["INPUT.CLIP.NUM_FRAMES", "8",
                                                "MODEL.WEIGHTS", videos["weights"], *opts])
    return VideoActionPredictor(cfg, track=False, **kwargs)


def boxed_schedule():
    """The demo's schedule (every second, endless: the video's end stops it) with given boxes."""
    return (KeyFrameRequest(r.time, r.timestamp, BOX) for r in key_frame_schedule(1.0))


def run(predictor, source):
    """Key frames, and the clips the model received (normalized (3, T, S, S))."""
    clips, mapper = [], predictor.mapper

    def capture(d):
        out = mapper(d)
        clips.append(out["clip"].clone())
        return out

    predictor.mapper = capture
    try:
        kfs = list(predictor(source, boxed_schedule()))
    finally:
        predictor.mapper = mapper
    return kfs, clips


def test_timing_rules():
    # the official index rule at the model's rate, in seconds (32 x 2 at 30 fps: -32 .. +30 frames)
    off = clip_time_offsets(32, 2, 30.0)
    assert np.allclose(off * 30, np.arange(-32, 31, 2))
    # at the model's own rate a frame folder gives exactly the official indices, clamped at the ends
    key = 40
    assert frame_folder_indices(key / 30 + off, 30.0, 50).tolist() == \
        np.clip(np.arange(key - 32, key + 31, 2), 0, 49).tolist()
    # the frame on screen: the last one shown at or before the time
    assert frames_on_screen([0.0, 0.1, 0.3], [-1, 0, 0.05, 0.1, 0.29, 0.3, 9]).tolist() == \
        [0, 0, 0, 1, 1, 2, 2]


def test_variable_rate_file_has_its_timestamps(videos):
    src = PyAVSource(str(videos["paths"]["C"]))
    times = [t for t, _ in src.timed_frames()]
    assert np.allclose(times, [t for _, t in videos["vfr"]], atol=1e-6)
    assert src.duration == pytest.approx(SECONDS, abs=0.13)


@pytest.mark.parametrize("other", ["B", "C"])
def test_same_clips_and_key_frames_at_another_rate(videos, other):
    predictor = predictor_of(videos)
    ref_kfs, ref_clips = run(predictor, str(videos["paths"]["A"]))
    kfs, clips = run(predictor, str(videos["paths"][other]))
    # the same seconds: 10 key frames for a 10 s video, at 0 .. 9 s
    assert [kf.time for kf in ref_kfs] == pytest.approx(list(range(SECONDS)))
    assert [kf.time for kf in kfs] == pytest.approx(list(range(SECONDS)))
    assert [kf.timestamp for kf in kfs] == list(range(SECONDS))
    # the same clips (lossless videos: exactly), and the same scores
    assert len(clips) == len(ref_clips) == SECONDS
    for k, (a, b) in enumerate(zip(clips, ref_clips)):
        assert torch.equal(a, b), f"{other}: clip of key frame {k} s differs by {(a - b).abs().max()}"
    for a, b in zip(kfs, ref_kfs):
        assert torch.allclose(a.instances.action_scores, b.instances.action_scores, atol=1e-6)


def test_clip_frames_are_the_pictures_of_the_model_seconds(videos):
    """Key frame t's clip frame k is the picture shown at t + (2k - 8) / 8 s (clamped)."""
    predictor = predictor_of(videos)
    seen = []
    gather = predictor._reader.at_times

    def spy(d, times):
        out = gather(d, times)
        seen.append(picture_ids(out.permute(0, 2, 3, 1).numpy()))
        return out

    predictor._reader.at_times = spy
    list(predictor(str(videos["paths"]["C"]), boxed_schedule()))
    for t, ids in enumerate(seen):
        want = np.clip(8 * t + np.arange(-8, 8, 2), 0, SECONDS * RATE - 1)
        assert ids == want.tolist(), (t, ids)


def test_30_and_60_fps_give_the_same_clips(videos):
    predictor = predictor_of(videos, "INPUT.CLIP.FPS", "30.0")
    assert predictor.clip_start_s == pytest.approx(-8 / 30)
    kfs30, clips30 = run(predictor, str(videos["paths"]["30"]))
    kfs60, clips60 = run(predictor, str(videos["paths"]["60"]))
    assert [kf.time for kf in kfs30] == [kf.time for kf in kfs60] == pytest.approx([0, 1, 2, 3])
    # 60 fps source frame indices are twice the 30 fps ones: the same pictures
    assert [kf.frame_index for kf in kfs60] == [2 * kf.frame_index for kf in kfs30]
    assert all(torch.equal(a, b) for a, b in zip(clips30, clips60))


def test_frame_folder_at_twice_the_rate_with_fps(videos):
    ref_kfs, ref_clips = run(predictor_of(videos, fps=8), FrameFolderSource(
        str(videos["paths"]["f8"]), 8))
    kfs, clips = run(predictor_of(videos, fps=16), str(videos["paths"]["f16"]))
    assert [kf.time for kf in kfs] == [kf.time for kf in ref_kfs] == pytest.approx(
        list(range(SECONDS)))
    assert all(torch.equal(a, b) for a, b in zip(clips, ref_clips))


def test_demo_agrees_across_rates_and_keeps_the_source_timing(videos, tmp_path):
    docs = {}
    for name in ("A", "C"):
        predictor = VideoActionPredictor(setup_cfg(BOXES_CONFIG, BOXES_OPTS + [
            "INPUT.CLIP.NUM_FRAMES", "8", "MODEL.WEIGHTS", videos["weights"]]))
        out = tmp_path / f"{name}.mp4"
        result = annotate_source(predictor, str(videos["paths"][name]), str(out),
                                 json_file=str(tmp_path / f"{name}.json"),
                                 key_frames=boxed_schedule(), progress=False)
        assert result.complete and result.key_frames == SECONDS
        docs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    a, c = docs["A"]["key_frames"], docs["C"]["key_frames"]
    assert [k["time"] for k in c] == [k["time"] for k in a] == list(range(SECONDS))
    for ka, kc in zip(a, c):
        assert len(ka["actors"]) == len(kc["actors"]) >= 1  # no unmatched actor
        for xa, xc in zip(ka["actors"], kc["actors"]):
            assert xa["track_id"] == xc["track_id"] and xa["box"] == xc["box"]
            assert np.abs(np.array(xa["scores"]) - np.array(xc["scores"])).max() <= 0.02
    # the annotated C shows every frame at its source time
    import av

    with av.open(str(tmp_path / "C.mp4")) as container:
        times = [f.time for f in container.decode(video=0)]
    assert np.allclose(times, [t for _, t in videos["vfr"]], atol=1e-4)
    assert len(decode(tmp_path / "C.mp4")) == len(videos["vfr"])
