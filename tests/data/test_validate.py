"""The dataset validator: every check fires on a dataset broken for it, with file and 1-based
line; a clean dataset passes; exit status; registration of a custom dataset in one call."""
import os
import pickle

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from acar_d2.data.datasets import register_ava_format_dataset
from acar_d2.data.validate import CHECKS, validate_ava_dataset
from tests.utils.demo_helpers import load_tool

main = load_tool("validate_dataset").main

from . import ava_fixtures as fx


@pytest.fixture
def world(tmp_path):
    return fx.make_ava_world(tmp_path / "w")


def _run(world, tmp_path, rows=None, **kw):
    ann = world["annotations"]
    if rows is not None:
        ann = fx.write_csv(tmp_path / "broken.csv", rows)
    args = dict(frames=world["frames"], proposals=world["proposals_pkl"],
                exclusions=world["exclusions"], fps=fx.FPS, first_second=fx.FIRST_SECOND)
    args.update(kw)
    return validate_ava_dataset(ann, world["label_map"], **args), ann


def _one(report, check, level="error"):
    found = [p for p in report.problems if p.check == check and p.level == level]
    assert found, f"no {level} [{check}] in:\n" + "\n".join(map(str, report.problems))
    return found


def test_clean_dataset_passes(world, tmp_path):
    report, _ = _run(world, tmp_path, proposals=None)
    assert report.problems == []
    assert report.stats["rows"] == len(fx.GT_ROWS) and report.stats["key_frames"] == 4
    assert report.class_counts == {1: 2, 12: 2, 17: 1, 79: 1}


def test_schema_errors_name_the_line(world, tmp_path):
    rows = list(fx.GT_ROWS)
    rows[1] = rows[1][:6]                                  # line 2: 6 columns
    rows[2] = ("vidA", "9o0", *rows[2][2:])                # line 3: timestamp
    rows[3] = (*rows[3][:6], "stand", 0)                   # line 4: action name
    rows[4] = (*rows[4][:7], "p3")                         # line 5: person id
    report, ann = _run(world, tmp_path, rows)
    assert sorted(p.line for p in _one(report, "schema")) == [2, 3, 4, 5]
    assert all(p.file == ann for p in _one(report, "schema"))


def test_box_checks(world, tmp_path):
    rows = list(fx.GT_ROWS)
    rows[0] = ("vidA", 900, 0.5, 0.25, 0.125, 0.75, 12, 0)   # inverted
    rows[5] = ("vidB", 903, 12, 5, 30, 20, 1, 4)              # pixels
    report, _ = _run(world, tmp_path, rows)
    assert [p.line for p in _one(report, "box_order")] == [1]
    rng = _one(report, "box_range")
    assert [p.line for p in rng] == [6] and "looks like pixels" in rng[0].message


def test_unknown_and_off_by_one_action_ids(world, tmp_path):
    rows = list(fx.GT_ROWS)
    rows[2] = (*rows[2][:6], 99, 1)
    report, _ = _run(world, tmp_path, rows)
    assert [p.line for p in _one(report, "unknown_action")] == [3]
    assert not report.by_check("off_by_one")
    shifted = [(*r[:6], r[6] - 1, r[7]) for r in fx.GT_ROWS]  # 0-based ids
    report, _ = _run(world, tmp_path, shifted)
    assert "0-based" in _one(report, "off_by_one")[0].message


def test_person_ids_and_duplicates(world, tmp_path):
    rows = list(fx.GT_ROWS) + [fx.GT_ROWS[0]]                              # line 7: duplicate
    rows[4] = (*rows[4][:7], -1)                                           # line 5: negative
    rows.append(("vidA", 900, 0.0, 0.0, 0.2, 0.2, 12, 0))                  # line 8: person 0 again
    report, _ = _run(world, tmp_path, rows)
    assert [p.line for p in _one(report, "person_id")] == [5]
    assert [p.line for p in _one(report, "person_id", "warning")] == [8]
    dup = _one(report, "duplicate", "warning")
    assert [p.line for p in dup] == [7] and "line 1" in dup[0].message


def test_frame_and_time_checks(world, tmp_path):
    rows = list(fx.GT_ROWS) + [("vidC", 900, 0.1, 0.1, 0.2, 0.2, 12, 0),    # line 7
                               ("vidB", 950, 0.1, 0.1, 0.2, 0.2, 12, 5)]    # line 8: 200 s late
    os.remove(os.path.join(world["frames"], "vidA", "vidA_000005.jpg"))  # key frame 901
    report, _ = _run(world, tmp_path, rows)
    assert [p.line for p in _one(report, "missing_video")] == [7]
    assert [p.line for p in _one(report, "timestamp_range")] == [8]
    assert [p.line for p in _one(report, "missing_frame")] == [4]
    # wrong fps: every key frame beyond the frames
    report, _ = _run(world, tmp_path, fps=30)
    assert len(_one(report, "timestamp_range")) == 3


def test_proposal_coverage_and_recall(world, tmp_path):
    report, _ = _run(world, tmp_path)
    # proposals cover vidA,900 only; vidB,903 is excluded: 2 of 3 key frames uncovered
    cov = _one(report, "proposal_coverage")
    assert "2 of 3" in cov[0].message and report.stats["proposal_coverage_%"] == pytest.approx(33.33)
    far = {"vidA,0900": np.array([[0.9, 0.9, 1.0, 1.0, 1.0]]), "vidA,0901": np.zeros((1, 5)),
           "vidB,0902": np.array([[0.0, 0.0, 1.0, 1.0, 0.9]]), "vidB,0903": np.zeros((1, 5))}
    path = tmp_path / "far.pkl"
    with open(path, "wb") as f:
        pickle.dump(far, f)
    report, _ = _run(world, tmp_path, proposals=str(path))
    assert not report.by_check("proposal_coverage")
    # 4 distinct GT boxes outside the excluded key frame, only vidB,902's full-frame box is found
    assert report.stats["proposal_recall@0.5_%"] == 25.0
    _one(report, "proposal_recall", "warning")


def test_exclusions_and_class_frequency(world, tmp_path):
    bad = fx.write_csv(tmp_path / "excl.csv", [("vidB", 903), ("vidB", "x", 1)])
    lm = tmp_path / "lm.pbtxt"
    lm.write_text(fx.LABEL_MAP + 'item {\n  name: "dance"\n  id: 5\n  label_type: PERSON_MOVEMENT\n}\n')
    report = validate_ava_dataset(world["annotations"], str(lm), exclusions=bad)
    assert [p.line for p in _one(report, "exclusions")] == [2]
    assert "[5]" in _one(report, "class_frequency", "warning")[0].message


def test_every_check_is_tested():
    tested = {"schema", "box_order", "box_range", "unknown_action", "off_by_one", "person_id",
              "duplicate", "missing_video", "timestamp_range", "missing_frame",
              "proposal_coverage", "proposal_recall", "exclusions", "class_frequency"}
    assert tested == set(CHECKS)


def test_custom_registration_and_cli(world, tmp_path, capsys):
    register_ava_format_dataset(
        "my_validate_data", annotations=world["annotations"], label_map=world["label_map"],
        frames=world["frames"], exclusions=world["exclusions"],
        proposals=world["proposals_csv"], fps=fx.FPS, first_second=fx.FIRST_SECOND)
    dicts = DatasetCatalog.get("my_validate_data")
    assert len(dicts) == 4  # 3 GT key frames (1 excluded) + 1 proposal-only
    assert MetadataCatalog.get("my_validate_data").action_ids == [1, 12, 17, 79]
    # proposals cover 1 of the 4 annotated key frames -> an error, exit 1
    assert main(["--dataset", "my_validate_data"]) == 1
    out = capsys.readouterr().out
    assert "[proposal_coverage]" in out and "1 error(s)" in out
    assert main(["--annotations", world["annotations"], "--label-map", world["label_map"]]) == 0
    with pytest.raises(ValueError, match="frames= and/or videos="):
        register_ava_format_dataset("x", annotations=None, label_map=world["label_map"])


# ---- key frames beyond their video (issue 24) -------------------------------------------------
# fx: 16 frames at 4 fps from second 900: frames 0..15, second 903 (frame 12) is the last key frame
_RANGE_ROWS = list(fx.GT_ROWS) + [
    ("vidA", 904, 0.1, 0.1, 0.2, 0.2, 12, 0),   # line 7: frame 16, one past the end
    ("vidA", 903, 0.1, 0.1, 0.2, 0.2, 12, 0),   # line 8: frame 12, the last valid second
    ("vidB", 899, 0.1, 0.1, 0.2, 0.2, 12, 5),   # line 9: frame -4, before the start
]


@pytest.fixture(scope="module")
def video_world(tmp_path_factory):
    return fx.make_ava_world(tmp_path_factory.mktemp("vw"), with_videos=True)


@pytest.mark.parametrize("source", ["frames", "frame_list", "videos"])
def test_key_frame_beyond_its_video_is_an_error(video_world, tmp_path, source):
    files = {"frames": dict(frames=video_world["frames"]),
             "frame_list": dict(frames=video_world["frames"],
                                frame_list=video_world["frame_list"]),
             "videos": dict(frames=None, videos=video_world["videos"])}[source]
    report, ann = _run(video_world, tmp_path, _RANGE_ROWS, proposals=None, **files)
    bad = _one(report, "timestamp_range")
    assert [(p.file, p.line) for p in bad] == [(ann, 7), (ann, 9)]
    assert "vidA,904 is frame 16" in bad[0].message and "seconds 900..903" in bad[0].message
    where = {"frames": os.path.join(video_world["frames"], "vidA"),
             "frame_list": video_world["frame_list"],
             "videos": os.path.join(video_world["videos"], "vidA.mp4")}[source]
    assert where in bad[0].message
    assert report.errors == bad  # the last valid second (line 8) passes
    assert report.stats["frames_checked"] == 7  # every key frame, the bad ones included
    # a 32x2 clip (+-32 frames) runs past an end of these 16-frame videos: padded, no problem
    assert report.stats["clips_padded"] == 5
    rows = list(fx.GT_ROWS) + [_RANGE_ROWS[7]]  # only the last valid second added
    report, _ = _run(video_world, tmp_path, rows, proposals=None, **files)
    assert report.problems == [] and report.stats["clips_padded"] == 5
    assert report.stats["frames_checked"] == 5


def test_video_split_checks_video_length_not_frames(video_world, tmp_path):
    # frames and video disagree (a 12-frame video): the video is checked too
    from acar_d2.data.video_io import write_video

    videos = tmp_path / "short"
    videos.mkdir()
    for vid, hw in fx.VIDEOS.items():
        write_video(str(videos / f"{vid}.mp4"), [fx.frame_image(k, hw) for k in range(12)], fx.FPS)
    report, ann = _run(video_world, tmp_path, list(fx.GT_ROWS), proposals=None,
                       videos=str(videos))
    bad = _one(report, "timestamp_range")
    assert [p.line for p in bad] == [6]  # vidB,903 = frame 12 of 12
    assert str(videos / "vidB.mp4") in bad[0].message


def _aca_world(tmp_path, prefix):
    from acar_d2.data.datasets.aca_world import register_aca_world
    from acar_d2.data.synthetic import write_world

    world = tmp_path / "aca_world"
    write_world(str(world), num_videos=4, seed=5)  # tools/make_synthetic_ava.py --videos 4 --seed 5
    val = world / "annotations" / "val.csv"
    lines = val.read_text().splitlines()
    vid, ts = lines[0].split(",")[:2]
    lines[0] = ",".join([vid, "9000"] + lines[0].split(",")[2:])
    val.write_text("\n".join(lines) + "\n")
    register_aca_world(str(world), prefix)
    return world, str(val), vid


def test_synthetic_world_key_frame_beyond_video(tmp_path, capsys):
    """The issue's case: one val row of a 10 s synthetic world at second 9000."""
    world, val, vid = _aca_world(tmp_path, "i24_world")
    assert main(["--dataset", "i24_world_val"]) == 1
    out = capsys.readouterr().out
    assert f"{val}:1: error [timestamp_range] key frame {vid},9000" in out
    assert "frames_checked 10" in out and "1 error(s)" in out
    with pytest.raises(ValueError, match=f"{vid},9000 maps to frame 72000.*{vid}"):
        DatasetCatalog.get("i24_world_val")
    # the same world holding its frames as video files only
    import shutil

    shutil.rmtree(world / "frames")
    shutil.rmtree(world / "frame_lists")
    assert main(["--dataset", "i24_world_val"]) == 1
    out = capsys.readouterr().out
    mp4 = os.path.join(str(world), "videos", f"{vid}.mp4")
    assert f"{val}:1: error [timestamp_range] key frame {vid},9000 is frame 72000" in out
    assert f"80 frames of {mp4} (seconds 0..9" in out
    assert "frames_checked 10" in out and "1 error(s)" in out


def test_kinetics_clips_checked(tmp_path):
    """AVA-Kinetics: the key frame's clip <yid>_<start>_<end>, frame 0 at its start."""
    from acar_d2.data.video_io import write_video

    frames, videos = tmp_path / "frames", tmp_path / "videos"
    clip = frames / "yt-1_000010_000014"  # 4 s clip, but only 3 s of frames on disk
    clip.mkdir(parents=True)
    for k in range(3 * fx.FPS):
        Image.fromarray(fx.frame_image(k, (24, 32))).save(clip / f"img_{k + 1:05d}.jpg")
    videos.mkdir()
    write_video(str(videos / "yt-2_000000_000004.mp4"),
                [fx.frame_image(k, (24, 32)) for k in range(4 * fx.FPS)], fx.FPS)
    ann = fx.write_csv(tmp_path / "kinetics.csv", [
        ("yt-1", "12.0", 0.1, 0.1, 0.5, 0.9, 12),    # frame 8 of 12: fine
        ("yt-1", "13.0", 0.1, 0.1, 0.5, 0.9, 12),    # frame 12 of 12: beyond the frames
        ("yt-2", "3.0", 0.1, 0.1, 0.5, 0.9, 1),      # frame 12 of the 16-frame video: fine
        ("yt-3", "5.0", 0.1, 0.1, 0.5, 0.9, 1),      # no clip on disk: skipped by the loader
    ])
    report = validate_ava_dataset(ann, _label_map(tmp_path), frames=str(frames),
                                  videos=str(videos), fps=fx.FPS, kinetics=True)
    bad = _one(report, "timestamp_range")
    assert [p.line for p in bad] == [2] and str(clip) in bad[0].message
    assert "= (13 - 10) * 4" in bad[0].message
    assert [p.line for p in _one(report, "missing_video", "warning")] == [4]
    assert report.errors == bad and report.stats["frames_checked"] == 3


def _label_map(tmp_path):
    path = tmp_path / "labels.pbtxt"
    path.write_text(fx.LABEL_MAP)
    return str(path)


def test_registered_kinetics_split(tmp_path, capsys):
    from acar_d2.data.datasets.ava_kinetics import register_ava_kinetics
    from acar_d2.data.datasets.builtin import register_all_ava

    from .test_ava_kinetics import _tree

    _tree(tmp_path)  # clip abc-_x1_000010_000020 (300 frames), key frames 15.0 and a gone video
    register_all_ava(str(tmp_path), "i24ava")
    register_ava_kinetics(str(tmp_path), "i24akv", ava_prefix="i24ava")
    assert main(["--dataset", "i24akv_kinetics_val"]) == 0
    out = capsys.readouterr().out
    assert "frames_checked 1" in out and "[missing_video]" in out and "0 error(s)" in out
    with pytest.raises(SystemExit, match="i24ava_v2.2_val"):
        main(["--dataset", "i24akv_val"])
