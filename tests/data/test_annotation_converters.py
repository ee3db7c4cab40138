"""AVA CSV <-> ACAR-Net pickle and CVAT video XML -> AVA CSV: round trips and known answers."""
import numpy as np
import pytest

from ava_eval.csv_io import read_box_csv, write_ava_csv
from acar_d2.data.formats.acar_pickle import acar_pickle_to_csv, csv_to_acar_pickle
from acar_d2.data.formats.cvat import read_cvat_video, write_cvat_video

from . import ava_fixtures as fx


def _rows(path):
    t = read_box_csv(path, groundtruth=True)
    return sorted((t.keyframes[k][0], t.keyframes[k][1], *np.round(b, 4).tolist(), int(a), int(p))
                  for k, b, a, p in zip(t.keyframe, t.boxes, t.labels, t.scores))


def test_csv_acar_pickle_round_trip(tmp_path):
    paths = fx.make_ava_world(tmp_path / "w")
    pkl = str(tmp_path / "gt.pkl")
    assert csv_to_acar_pickle(paths["annotations"], paths["label_map"], pkl, fps=fx.FPS,
                              first_second=fx.FIRST_SECOND) == 4  # 4 key frames
    out = str(tmp_path / "back.csv")
    assert acar_pickle_to_csv(pkl, out) == len(fx.GT_ROWS)
    assert _rows(out) == _rows(paths["annotations"])
    with pytest.raises(FileExistsError):
        acar_pickle_to_csv(pkl, out)


def test_cvat_round_trip_and_key_frame_rule(tmp_path):
    paths = fx.make_ava_world(tmp_path / "w")
    rows = [r for r in fx.GT_ROWS if r[0] == "vidA"]
    xml = write_cvat_video(rows, paths["label_map"], str(tmp_path / "a.xml"), width=640, height=480,
                           fps=30, first_second=900)
    back = read_cvat_video(xml, paths["label_map"], "vidA", fps=30, first_second=900)
    csv_a, csv_b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
    write_ava_csv(rows, csv_a)
    write_ava_csv(back, csv_b)
    assert _rows(csv_a) == _rows(csv_b)

    # a hand-written export: frame 15 is not a key frame, outside boxes are skipped, an
    # "action" attribute and a track label name classes
    (tmp_path / "h.xml").write_text("""<?xml version="1.0"?>
<annotations><version>1.1</version><meta><task><original_size><width>100</width><height>50</height>
</original_size></task></meta>
<track id="7" label="stand"><box frame="0" outside="0" xtl="10" ytl="5" xbr="50" ybr="45">
<attribute name="action">talk to (e.g., self, a person, a group)</attribute></box>
<box frame="15" outside="0" xtl="10" ytl="5" xbr="50" ybr="45"/>
<box frame="30" outside="1" xtl="10" ytl="5" xbr="50" ybr="45"/></track>
</annotations>""")
    got = read_cvat_video(str(tmp_path / "h.xml"), paths["label_map"], "-vid", fps=30, first_second=5)
    assert got == [("-vid", 5, 0.1, 0.1, 0.5, 0.9, 12, 7), ("-vid", 5, 0.1, 0.1, 0.5, 0.9, 79, 7)]
    (tmp_path / "bad.xml").write_text(
        (tmp_path / "h.xml").read_text().replace("talk to (e.g., self, a person, a group)", "jump"))
    with pytest.raises(ValueError, match="'jump' is not a class"):
        read_cvat_video(str(tmp_path / "bad.xml"), paths["label_map"], "v")


def test_cli_tools_take_dash_video_ids(tmp_path):
    """AVA / YouTube ids may start with '-': --video-id=-FaXLcSFjUI reaches the converter."""
    import importlib.util
    import os

    paths = fx.make_ava_world(tmp_path / "w")
    xml = write_cvat_video([r for r in fx.GT_ROWS if r[0] == "vidA"], paths["label_map"],
                           str(tmp_path / "a.xml"), width=64, height=48, fps=30, first_second=900)
    spec = importlib.util.spec_from_file_location(
        "convert_annotations", os.path.join(os.path.dirname(__file__), "..", "..", "tools",
                                            "convert_annotations.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / "o.csv")
    assert tool.main(["cvat-to-csv", xml, paths["label_map"], out, "--video-id=-FaXLcSFjUI",
                      "--fps", "30", "--first-second", "900"]) == 0
    rows = open(out).read().splitlines()
    assert len(rows) == 4 and all(r.startswith("-FaXLcSFjUI,0900,") or r.startswith("-FaXLcSFjUI,0901,")
                                  for r in rows)
