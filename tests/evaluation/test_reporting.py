"""Known answers of the result summaries used by the quickstart and the relation benchmark."""
import pytest

from ava_eval.reporting import chance_frame_map, plot_per_class_ap, summarize_frame_map


def test_summarize_picks_overall_per_class_and_groups():
    # Group means ("mAP-pose", shorter keys) must not be mistaken for the overall frame-mAP.
    # The group means are the evaluator's own entries, read as they are.
    results = {"frame_mAP@0.5": 50.0, "AP-stand": 40.0, "AP-ride": 70.0, "AP-listen": 40.0,
               "mAP-pose": 40.0, "mAP-person_object": 70.0, "mAP-person_person": 40.0}
    s = summarize_frame_map({"aca_world_val": results}, ["stand", "ride", "listen"])
    assert s["frame_mAP"] == 50.0
    assert s["per_class"] == {"stand": 40.0, "ride": 70.0, "listen": 40.0}
    assert s["per_group"] == {"pose": 40.0, "person_object": 70.0, "person_person": 40.0}


def test_summarize_without_map_raises_with_keys():
    with pytest.raises(KeyError, match="AP-stand"):
        summarize_frame_map({"AP-stand": 1.0}, ["stand"])


def test_chance_level_is_mean_class_share():
    # 4 boxes: class 1 on 3 of them, class 2 on 1, class 3 never -> (3/4 + 1/4) / 2 = 50 %.
    dicts = [
        {"annotations": [{"action_ids": [1]}, {"action_ids": [1, 2]}]},
        {"annotations": [{"action_ids": [1]}, {"action_ids": []}]},
    ]
    assert chance_frame_map(dicts, [1, 2, 3]) == pytest.approx(50.0)


def test_plot_per_class_ap_writes_png_without_nan_classes(tmp_path, monkeypatch):
    import matplotlib.axes

    drawn = {}
    real_bar = matplotlib.axes.Axes.bar

    def spy(self, x, height, *a, **k):
        drawn["heights"] = list(height)
        return real_bar(self, x, height, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", spy)
    path = tmp_path / "ap.png"
    plot_per_class_ap({"stand": 80.0, "ride": float("nan"), "listen": 20.0}, str(path), "t",
                      groups={"pose": ["stand"], "person_person": ["listen"]}, order=["listen", "stand"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn["heights"] == [20.0, 80.0]
