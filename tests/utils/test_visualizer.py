import av
import numpy as np

from acar_d2.data.video_io import write_video
from acar_d2.utils.visualizer import ActionVisualizer


def test_labels_top_k_and_threshold():
    vis = ActionVisualizer(["stand", "sit", "ride", "drive"], top_k=2, score_thresh=0.3)
    labels = vis.labels_for(np.array([[0.9, 0.1, 0.7, 0.8], [0.1, 0.2, 0.25, 0.0]]))
    assert labels[0] == [("stand", 0.9), ("drive", 0.8)]
    assert labels[1] == []  # nothing above the threshold


def test_draw_does_not_modify_input_and_marks_box():
    vis = ActionVisualizer(["a", "b"])
    frame = np.zeros((64, 80, 3), np.uint8)
    out = vis.draw(frame, np.array([[10, 12, 40, 50]]), np.array([[0.9, 0.1]]))
    assert frame.sum() == 0
    assert out.shape == frame.shape
    # The box outline is drawn on its left edge, away from the label.
    assert out[30, 10].sum() > 0 and out[30, 25].sum() == 0


def test_write_video_round_trip(tmp_path):
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(6)]
    path = str(tmp_path / "v.mp4")
    write_video(path, frames, fps=8)
    with av.open(path) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == 6
    means = [d.mean() for d in decoded]
    assert np.allclose(means, [20 * i for i in range(6)], atol=6)
