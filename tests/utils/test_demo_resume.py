"""Long videos and ``--resume``: a run stopped after k key frames (Ctrl-C between or inside a key
frame, or killed between checkpoints) and resumed gives the JSON / CSV of an uninterrupted run and a
video with every frame, with the model run only on the key frames not written; a resume with
another source or config is refused naming the progress file; memory does not grow with the video.
"""
import contextlib
import functools
import gc
import io
import json
import os
import tracemalloc

import jsonschema
import numpy as np
import pytest

from acar_d2.data.video_io import VideoSource
from acar_d2.data.video_io import segments
from acar_d2.data.video_io.segments import SegmentedVideoWriter
from acar_d2.engine import setup_cfg
from acar_d2.engine.video_predictor import KeyFrameRequest, VideoActionPredictor
from demo import resume as demo_resume
from demo.outputs import DEMO_JSON_SCHEMA
from demo import demo  # what tools/demo.py runs
from tests.utils.demo_helpers import BOXES_CONFIG, BOXES_OPTS, decode, saved_model, write_test_video

NUM_KEY_FRAMES = 10  # 80 frames at 8 fps, one key frame per second


def boxes_csv(path, video_id="walk", seconds=NUM_KEY_FRAMES):
    """Two persons walking all along, a third leaving after 2 s and a fourth coming at 2 s: track
    ids 1, 2, 3 then 1, 2, 4; a tracker restarted at the resume point would say 1, 2, 3."""
    rows = []
    for t in range(seconds):
        boxes = [(0.05 + 0.03 * t, 0.2, 0.25 + 0.03 * t, 0.9),
                 (0.5 - 0.02 * t, 0.2, 0.7 - 0.02 * t, 0.9),
                 (0.7, 0.2, 0.9, 0.9) if t < 2 else (0.7, 0.0, 0.9, 0.15)]
        rows += [f"{video_id},{t},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},,0.9\n"
                 for x1, y1, x2, y2 in boxes]
    path.write_text("".join(rows))
    return path


def lossless_segments(monkeypatch):
    """Lossless H.264 segments: a resumed video can be compared frame by frame, exactly."""
    monkeypatch.setattr(segments, "VideoWriter", functools.partial(segments.VideoWriter, crf=0))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    weights = saved_model(BOXES_CONFIG, BOXES_OPTS, tmp)
    video = tmp / "walk.mp4"
    write_test_video(video, n=8 * NUM_KEY_FRAMES, fps=8)
    boxes = boxes_csv(tmp / "boxes.csv")
    ref = {"mp4": tmp / "ref.mp4", "json": tmp / "ref.json", "csv": tmp / "ref.csv"}
    with pytest.MonkeyPatch.context() as m:
        lossless_segments(m)
        code, err = run(ref, video, boxes, weights)
    assert code == 0, err
    return dict(weights=weights, video=video, boxes=boxes, ref=ref)


def run(out, video, boxes, weights, *extra, opts=()):
    """demo.main on the boxes model -> (exit status or SystemExit message, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = demo.main(["--no-progress", "--config-file", BOXES_CONFIG, "--input", str(video),
                              "--boxes", str(boxes), "--output", str(out["mp4"]), "--json",
                              str(out["json"]), "--csv", str(out["csv"]), *extra, *BOXES_OPTS,
                              "MODEL.WEIGHTS", weights, *opts])
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


@pytest.fixture
def model_calls(monkeypatch):
    """The key frames (their frame indices at the 8 fps test video) the model predicted."""
    calls = []
    original = VideoActionPredictor.predict_key_frame

    def counted(self, buffer, request, video_id="video"):
        calls.append(int(round(request.time * 8)))
        return original(self, buffer, request, video_id)

    monkeypatch.setattr(VideoActionPredictor, "predict_key_frame", counted)
    return calls


def interrupt(monkeypatch, how, k):
    """Make the next demo run stop as ``how`` says after ``k`` key frames."""
    original = demo.annotate_source

    def stop_after_k(kf):
        if kf.index + 1 == k:
            raise KeyboardInterrupt

    if how == "ctrl-c":
        monkeypatch.setattr(demo, "annotate_source",
                            lambda *a, **kw: original(*a, on_key_frame=stop_after_k, **kw))
    elif how == "ctrl-c inside a key frame":  # while its 5th frame is written
        write = SegmentedVideoWriter.write

        def write_or_stop(self, frame, time=None):
            if self.num_frames == 8 * k + 4:
                raise KeyboardInterrupt
            write(self, frame, time)

        monkeypatch.setattr(SegmentedVideoWriter, "write", write_or_stop)
    else:  # killed: no final checkpoint, the JSON not closed, the open segment unfinished
        monkeypatch.setattr(demo_resume.DemoOutputs, "finish", lambda self, *a, **kw: None)
        monkeypatch.setattr(demo, "annotate_source", lambda *a, **kw: original(
            *a, on_key_frame=stop_after_k, checkpoint_every=3, **kw))


@pytest.mark.parametrize("how, k, done", [("ctrl-c", 4, 4), ("ctrl-c inside a key frame", 3, 3),
                                          ("killed", 5, 3)])
def test_resumed_run_equals_an_uninterrupted_one(setup, tmp_path, monkeypatch, model_calls, how,
                                                 k, done):
    out = {"mp4": tmp_path / "o.mp4", "json": tmp_path / "o.json", "csv": tmp_path / "o.csv"}
    lossless_segments(monkeypatch)
    with monkeypatch.context() as m:
        interrupt(m, how, k)
        code, _ = run(out, setup["video"], setup["boxes"], setup["weights"])
    assert code == 130
    assert os.path.exists(demo_resume.progress_path(str(out["mp4"])))
    # without --resume the interrupted run's files are refused, never replaced
    code, _ = run(out, setup["video"], setup["boxes"], setup["weights"])
    assert "refusing to overwrite" in str(code) or "--resume continues it" in str(code), code
    model_calls.clear()
    code, err = run(out, setup["video"], setup["boxes"], setup["weights"], "--resume")
    assert code == 0, err
    # the model ran only on the key frames not fully written before
    assert model_calls == [8 * i for i in range(done, NUM_KEY_FRAMES)], model_calls
    ref = setup["ref"]
    doc, ref_doc = json.loads(out["json"].read_text()), json.loads(ref["json"].read_text())
    jsonschema.validate(doc, DEMO_JSON_SCHEMA)
    assert doc == ref_doc  # track ids included: the tracker replayed the boxes written
    assert doc["complete"] is True and len(doc["key_frames"]) == NUM_KEY_FRAMES
    assert {a["track_id"] for kf in doc["key_frames"] for a in kf["actors"]} == {1, 2, 3, 4}
    assert out["csv"].read_text() == ref["csv"].read_text()
    frames, ref_frames = decode(out["mp4"]), decode(ref["mp4"])
    assert len(frames) == len(ref_frames) == 8 * NUM_KEY_FRAMES
    # the same drawings, none repeated or lost at the joins (lossless, so exactly)
    bad = [i for i, (a, b) in enumerate(zip(frames, ref_frames)) if not np.array_equal(a, b)]
    assert not bad, f"frames {bad} differ from the uninterrupted run's"
    assert demo_resume.leftover_files(str(out["mp4"])) == []  # finished: no progress files left


def interrupted_run(setup, tmp_path, monkeypatch, k=4):
    out = {"mp4": tmp_path / "o.mp4", "json": tmp_path / "o.json", "csv": tmp_path / "o.csv"}
    with monkeypatch.context() as m:
        interrupt(m, "ctrl-c", k)
        code, _ = run(out, setup["video"], setup["boxes"], setup["weights"])
    assert code == 130
    doc = json.loads(out["json"].read_text())  # an interrupted run's JSON is valid
    jsonschema.validate(doc, DEMO_JSON_SCHEMA)
    assert doc["complete"] is False and len(doc["key_frames"]) == k
    assert len(decode(out["mp4"])) == doc["num_frames"] == 8 * k
    return out


def test_resume_with_another_source_or_config_is_refused(setup, tmp_path, monkeypatch):
    out = interrupted_run(setup, tmp_path, monkeypatch)
    progress = demo_resume.progress_path(str(out["mp4"]))
    before = {p: p.read_bytes() for p in out.values()}
    code, _ = run(out, setup["video"], setup["boxes"], setup["weights"], "--resume",
                  opts=["SEED", "5"])
    assert "the settings differs" in str(code) and progress in str(code), code
    assert "config_sha256" in str(code)
    other = tmp_path / "walk.mp4"  # same name, other frames
    write_test_video(other, n=8 * NUM_KEY_FRAMES, fps=8, size=(120, 162))
    code, _ = run(out, other, setup["boxes"], setup["weights"], "--resume")
    assert "the source differs" in str(code) and progress in str(code), code
    code, _ = run(out, setup["video"], setup["boxes"], setup["weights"], "--resume",
                  "--score-thresh", "0.5")
    assert "the settings differs" in str(code) and "thresholds" in str(code), code
    assert {p: p.read_bytes() for p in out.values()} == before  # nothing touched


def test_resume_without_an_interrupted_run_is_refused(setup, tmp_path):
    out = {"mp4": tmp_path / "o.mp4", "json": tmp_path / "o.json", "csv": tmp_path / "o.csv"}
    code, _ = run(out, setup["video"], setup["boxes"], setup["weights"], "--resume")
    assert "no interrupted run to resume" in str(code)
    assert demo_resume.progress_path(str(out["mp4"])) in str(code)
    code, _ = run(out, setup["video"], setup["boxes"], setup["weights"], "--resume", "--overwrite")
    assert "give one of them" in str(code)


class SyntheticSource(VideoSource):
    """``num_frames`` small frames made on the fly (no file, nothing kept)."""

    def __init__(self, num_frames: int, fps: float = 4.0, size=(48, 64)):
        super().__init__()
        self.name, self.fps, self.num_frames = "synthetic", fps, num_frames
        self.height, self.width = size

    def __iter__(self):
        for i in range(self.num_frames):
            frame = np.full((self.height, self.width, 3), 60, np.uint8)
            frame[10:40, (2 * i) % 50:(2 * i) % 50 + 12] = 220
            self.frames_read += 1
            yield frame


def test_memory_is_flat_over_a_long_video(setup, tmp_path):
    """Python memory (tracemalloc, numpy arrays included) after 4N key frames is that after N:
    frames, predictions, JSON key frames, tracks are not kept."""
    from demo.predictor import annotate_source

    cfg = setup_cfg(BOXES_CONFIG, BOXES_OPTS + ["MODEL.WEIGHTS", setup["weights"]])
    predictor = VideoActionPredictor(cfg)
    n, fps = 30, 4.0
    source = SyntheticSource(int(4 * n * fps), fps)
    boxes = np.array([[5, 5, 30, 45], [30, 5, 60, 45]], np.float32)
    requests = (KeyFrameRequest(float(t), t,
                                {"boxes": boxes + t % 3, "scores": np.array([0.9, 0.8])})
                for t in range(4 * n))  # an iterator: the schedule is not a list either
    memory = {}

    def sample(kf):
        if kf.index + 1 in (n, 4 * n):
            gc.collect()  # the JSON encoder's closures are cycles: garbage, not kept
            memory[kf.index + 1] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        result = annotate_source(predictor, source, str(tmp_path / "long.mp4"),
                                 str(tmp_path / "long.json"), str(tmp_path / "long.csv"),
                                 key_frames=requests, progress=False, checkpoint_every=20,
                                 on_key_frame=sample)
    finally:
        tracemalloc.stop()
    assert result.complete and result.key_frames == 4 * n and result.frames == 4 * n * 4
    growth = memory[4 * n] - memory[n]
    print(f"traced memory after {n} key frames: {memory[n]} B, after {4 * n}: {memory[4 * n]} B")
    # A key frame's JSON entry alone is ~2 KB of Python objects, its 4 frames 37 KB: keeping either
    # for the 3N later key frames would add > 180 KB.
    assert growth < 60_000, (memory, growth)
    doc = json.loads((tmp_path / "long.json").read_text())
    assert len(doc["key_frames"]) == 4 * n and doc["num_frames"] == 4 * n * 4
    assert len(decode(tmp_path / "long.mp4")) == 4 * n * 4
