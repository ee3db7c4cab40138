"""VideoActionPredictor: key frames every second from one decoding pass, the same scores as the
clip predictor on the same boxes, every frame handed out once, bounded live latency, tracks."""
import numpy as np
import pytest
import torch

from acar_d2.engine import ActionPredictor, VideoActionPredictor, setup_cfg
from acar_d2.engine.video_predictor import (KeyFrameRequest, action_class_ids, action_class_names,
                                            key_frame_schedule)
from demo.predictor import FrameTap, video_keyframe_dicts
from acar_d2.utils.tracking import KeyFrameTracker
from acar_d2.data.video_io import VideoSource
from tests.utils.demo_helpers import (BOXES_CONFIG, BOXES_OPTS, moving_frames, saved_model,
                                      write_test_video)

BOXES = {0: [[0.05, 0.2, 0.3, 0.8, 0.99]], 1: [[0.2, 0.25, 0.45, 0.75, 0.9]],
         2: [[0.4, 0.2, 0.6, 0.8, 0.95], [0.6, 0.3, 0.8, 0.9, 0.8]]}


@pytest.fixture(scope="module")
def boxes_cfg(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    weights = saved_model(BOXES_CONFIG, BOXES_OPTS, folder)
    return setup_cfg(BOXES_CONFIG, BOXES_OPTS + ["MODEL.WEIGHTS", weights])


def requests_of(dicts):
    return [KeyFrameRequest(d["key_frame_index"] / d["fps"], d["timestamp"], d["proposals"])
            for d in dicts]


def test_schedule_every_second_and_class_names_without_files():
    reqs = list(key_frame_schedule(1.0, end_s=2.5))
    assert [(r.time, r.timestamp) for r in reqs] == [(0, 0), (1, 1), (2, 2)]
    half = list(key_frame_schedule(0.5, end_s=2.4))
    assert [r.time for r in half] == [0, 0.5, 1, 1.5, 2] and half[1].timestamp is None
    assert [r.time for r in key_frame_schedule(1.0, end_s=3.0)] == [0, 1, 2]  # the end excluded
    cfg = setup_cfg(BOXES_CONFIG)
    assert action_class_names(cfg)[:4] == ["stand", "sit", "walk", "lie"]
    assert action_class_ids(cfg) == list(range(1, 11))
    ava = setup_cfg(str(BOXES_CONFIG).replace("Synthetic/Base-Synthetic", "AVA/SLOWFAST_R50_ACAR_HR2O"))
    assert len(action_class_names(ava)) == 60 and action_class_ids(ava)[:3] == [1, 3, 4]


def test_same_scores_as_the_clip_predictor_with_the_seek_reader(tmp_path, boxes_cfg):
    path = str(tmp_path / "v.mp4")
    write_test_video(path, n=24, fps=8)
    dicts = video_keyframe_dicts(path, "v", {k: np.array(v) for k, v in BOXES.items()})
    video = VideoActionPredictor(boxes_cfg, track=False)
    out = list(video(path, requests_of(dicts)))
    clip_cfg = boxes_cfg.clone()
    clip_cfg.defrost()
    clip_cfg.INPUT.CLIP.SOURCE = "video"
    clip = ActionPredictor(clip_cfg)
    assert [kf.frame_index for kf in out] == [0, 8, 16]
    for kf, d in zip(out, dicts):
        ref = clip(d)
        assert torch.allclose(kf.instances.pred_boxes.tensor, ref.pred_boxes.tensor, atol=1e-4)
        assert torch.allclose(kf.instances.action_scores, ref.action_scores, atol=1e-5)
        assert kf.instances.track_ids.tolist() == [-1] * len(ref)
    # boxes in source pixels
    assert torch.allclose(out[0].instances.pred_boxes.tensor,
                          torch.tensor([[0.05 * 160, 0.2 * 120, 0.3 * 160, 0.8 * 120]]), atol=2.5)


class ListSource(VideoSource):
    """A live source: frames arrive one by one, the total is unknown."""

    def __init__(self, frames, fps=8.0):
        super().__init__()
        self.name, self.fps, self.frames = "live", fps, frames
        self.height, self.width = frames[0].shape[:2]
        self.num_frames, self.is_live = None, True

    def __iter__(self):
        for f in self.frames:
            self.frames_read += 1
            yield f


def test_live_latency_and_every_frame_once(boxes_cfg):
    frames = moving_frames(30)
    box = {"boxes": np.array([[20.0, 30, 60, 100]], np.float32), "scores": np.ones(1, np.float32)}
    reqs = [KeyFrameRequest(k / 8, k // 8, box) for k in (0, 8, 16, 24)]
    predictor = VideoActionPredictor(boxes_cfg)
    src = ListSource(frames)
    # 4 frames x rate 2 at the model's 8 fps: the clip ends 2 frames (0.25 s) after the key
    assert predictor.clip_end_s == 0.25 and predictor.clip_start_s == -0.5
    after = 2
    read_at_yield = []
    for kf in predictor(src, iter(reqs)):
        read_at_yield.append(src.frames_read)
    # each prediction comes as soon as a frame after the clip's last time arrived
    assert read_at_yield == [0 + after + 1, 8 + after + 1, 16 + after + 1, 24 + after + 1]
    # the demo's tap: every frame exactly once, in order, each key frame's frames up to the next
    tap = FrameTap(ListSource(frames))
    spans = [[i for i, _, _ in tap.take_before(kf.time)] for kf in predictor(tap, iter(reqs))]
    spans.append([i for i, _, _ in tap.take_before(float("inf"))])
    assert [(s[0] if s else None, len(s)) for s in spans] == \
        [(None, 0), (0, 8), (8, 8), (16, 8), (24, 6)]
    assert sum(spans, []) == list(range(30))


def test_refuses_random_weights_and_missing_boxes(tmp_path, boxes_cfg):
    cfg = boxes_cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ""
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty"):
        VideoActionPredictor(cfg)
    path = str(tmp_path / "v.mp4")
    write_test_video(path, n=8)
    with pytest.raises(ValueError, match="no person detector"):
        list(VideoActionPredictor(boxes_cfg)(path))


def test_tracker_keeps_ids_of_moving_boxes():
    tracker = KeyFrameTracker()
    a, b = [10, 10, 40, 90], [100, 20, 130, 100]
    assert tracker.update(np.array([a, b]), np.ones(2)) == [1, 2]
    # both move ~8 px; given in the other order: ids follow the boxes, not the order
    moved = np.array([[108, 22, 138, 102], [18, 12, 48, 92]])
    assert tracker.update(moved, np.ones(2)) == [2, 1]
    # a new person far away gets a new id; a degenerate box gets none
    out = tracker.update(np.array([[26, 14, 56, 94], [200, 10, 230, 90], [5, 5, 5, 9]]), np.ones(3))
    assert out == [1, 3, -1]
