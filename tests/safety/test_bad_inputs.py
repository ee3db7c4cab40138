"""
Smaller refusals: a corrupt last checkpoint on resume names the others and how to resume from
one; a corrupt video does not block a split read from its frames; a NaN proposal box is an
error where the proposal file is read, naming it.
"""
import logging
import pickle

import numpy as np
import pytest
from PIL import Image

from acar_d2.checkpoint import ACARCheckpointer, ResumeCheckpointError
from acar_d2.data.datasets.ava import index_video_sources, read_dense_proposals
from acar_d2.data.formats.proposals import read_proposals

from .conftest import StandIn


def test_corrupt_last_checkpoint_names_the_earlier_one_and_how_to_resume(tmp_path):
    model = StandIn()
    ckpt = ACARCheckpointer(model, str(tmp_path))
    ckpt.save("model_0000002", iteration=2)
    good = (tmp_path / "model_0000002.pth").read_bytes()
    (tmp_path / "model_0000005.pth").write_bytes(good[: len(good) // 3])  # killed mid-write
    (tmp_path / "last_checkpoint").write_text("model_0000005.pth")
    with pytest.raises(ResumeCheckpointError) as e:
        ACARCheckpointer(StandIn(), str(tmp_path)).resume_or_load("", resume=True)
    msg = str(e.value)
    assert "model_0000005.pth" in msg and "unreadable" in msg, msg
    assert f"echo model_0000002.pth > {tmp_path / 'last_checkpoint'}" in msg and "--resume" in msg
    # following the advice resumes from iteration 2
    (tmp_path / "last_checkpoint").write_text("model_0000002.pth")
    extra = ACARCheckpointer(StandIn(), str(tmp_path)).resume_or_load("", resume=True)
    assert extra["iteration"] == 2
    # nothing else to offer: say so
    (tmp_path / "model_0000002.pth").unlink()
    (tmp_path / "last_checkpoint").write_text("model_0000005.pth")
    with pytest.raises(ResumeCheckpointError, match="No other checkpoint"):
        ACARCheckpointer(StandIn(), str(tmp_path)).resume_or_load("", resume=True)


def make_frames(root, vid, n=3, size=(12, 16)):
    folder = root / vid
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(folder / f"{vid}_{i + 1:06d}.jpg")


def test_corrupt_video_does_not_block_frame_loading(tmp_path, caplog):
    frames, videos = tmp_path / "frames", tmp_path / "videos"
    make_frames(frames, "good")
    make_frames(frames, "broken")
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    (videos / "good.mp4").write_bytes(b"")  # empty: also unreadable
    with caplog.at_level(logging.WARNING):
        src = index_video_sources(["good", "broken"], frames=str(frames), videos=str(videos))
    assert src["broken"].num_frames == 3 and (src["broken"].height, src["broken"].width) == (12, 16)
    assert src["broken"].video_file == str(videos / "broken.mp4")
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "broken.mp4" in warned and "INPUT.CLIP.SOURCE 'video'" in warned
    # without frames the video is the only source: still an error naming it
    with pytest.raises(ValueError, match="broken.mp4"):
        index_video_sources(["broken"], videos=str(videos))


def test_nan_proposal_box_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "dense_proposals_val.pkl"
    good = np.array([[0.1, 0.1, 0.5, 0.5, 0.9]], np.float32)
    bad = np.array([[0.1, 0.1, 0.5, 0.5, 0.9], [0.2, np.nan, 0.6, 0.7, 0.95]], np.float32)
    with open(path, "wb") as f:
        pickle.dump({"vid,0902": good, "vid,0903": bad}, f)
    with pytest.raises(ValueError) as e:
        read_dense_proposals(str(path))
    msg = str(e.value)
    assert "dense_proposals_val.pkl" in msg and "'vid,0903'" in msg and "NaN" in msg, msg
    with pytest.raises(ValueError, match="dense_proposals_val.pkl"):
        read_proposals(str(path))  # the reader load_ava_instances uses
    with open(path, "wb") as f:
        pickle.dump({"vid,0902": np.array([[0.1, 0.1, 0.5, 0.5, np.inf]], np.float32)}, f)
    with pytest.raises(ValueError, match="infinite"):
        read_dense_proposals(str(path))
