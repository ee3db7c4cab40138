"""
A command-line tool answers a bad input file with one line naming the file (and the line where the
input has lines) and exit status 2, never a traceback; ``--debug`` or ``ACAR_DEBUG=1`` shows the
traceback, and a bug (an exception of an unexpected type) still shows it (``acar_d2/engine/cli.py``,
docs/SAFETY.md).

Each tool runs in-process through the wrapper its ``__main__`` uses (``run_cli``), and fails before
a model is built; two real processes check the same from the shell.
"""
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from acar_d2.engine.cli import USER_ERROR_STATUS, run_cli

from ..utils.demo_helpers import BOXES_CONFIG, load_tool

REPO = Path(__file__).resolve().parents[2]
NO_SIZE_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><task><name>t</name></task></meta>
<track id="0" label="person"><box frame="0" outside="0" occluded="0" keyframe="1"
 xtl="1" ytl="1" xbr="5" ybr="5"/></track>
</annotations>
"""
# "billion laughs": expat's own amplification limit refuses it
LAUGHS_XML = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol0 "lol">\n'
              + "".join(f' <!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
              + "]>\n<annotations>&lol9;</annotations>\n")


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict:
    """name -> path of the bad (and the good) input files."""
    tmp = tmp_path_factory.mktemp("bad")
    files = {
        "no_size.xml": NO_SIZE_XML,
        "laughs.xml": LAUGHS_XML,
        # line 2: a timestamp that is not a number
        "rows.csv": "vid1,0902,0.1,0.1,0.5,0.5,12,1\nvid1,abc,0.1,0.1,0.5,0.5,12,1\n",
        "gt.csv": "vid1,0902,0.1,0.1,0.5,0.5,12,1\n",
        "six_columns.csv": "vid1,0902,0.1,0.1,0.5,0.5\n",
        "cut.pbtxt": 'item {\n  name: "stand"\n  id: 1\n',
        "labels.pbtxt": (REPO / "ava_eval" / "ava_labelmap_v2.2.pbtxt").read_text(),
        "garbage.pth": "not a checkpoint\n",
        "bad.yaml": "MODEL:\n  WEIGHTS: [1,\n  X: 2\n",  # cut list: a syntax error at line 4
        "thresholds.json": '{"default": 0.5,\n "thresholds": {"stand": }\n',
        "in.mp4": "",
        "datasets/aca_world/world.json": "{}",  # quickstart: "the world is there"
    }
    out = {}
    for name, text in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out[name] = str(path)
    out["tmp"] = tmp
    return out


# (tool, its entry for run_cli, argv(bad files, output folder), what the line must name)
CASES = {
    "cvat_without_original_size": (
        "convert_annotations", "main",
        lambda b, o: ["cvat-to-csv", b["no_size.xml"], b["labels.pbtxt"], f"{o}/a.csv",
                      "--video-id", "v"],
        ["no_size.xml: no <original_size>"]),
    "cvat_entity_expansion": (
        "convert_annotations", "main",
        lambda b, o: ["cvat-to-csv", b["laughs.xml"], b["labels.pbtxt"], f"{o}/a.csv",
                      "--video-id", "v"],
        ["laughs.xml: not an XML file", "amplification", "line 14"]),
    "annotation_csv_row": (
        "convert_annotations", "main",
        lambda b, o: ["csv-to-acar", b["rows.csv"], b["labels.pbtxt"], f"{o}/a.pkl"],
        ["rows.csv, line 2: timestamp 'abc'"]),
    "proposal_csv_row": (
        "convert_proposals", "main",
        lambda b, o: [b["rows.csv"], f"{o}/p.pkl", "--to", "acar_pkl"],
        ["rows.csv, line 2"]),
    "checkpoint_not_a_checkpoint": (
        "convert_checkpoint", "main",
        lambda b, o: [b["garbage.pth"], f"{o}/c.pth"],
        ["garbage.pth"]),
    "validate_cut_label_map": (
        "validate_dataset", "main",
        lambda b, o: ["--annotations", b["gt.csv"], "--label-map", b["cut.pbtxt"]],
        ["cut.pbtxt: item #1 (line 1)"]),
    "train_net_yaml": (
        "train_net", "invoke_main",
        lambda b, o: ["--config-file", b["bad.yaml"], "OUTPUT_DIR", f"{o}/run"],
        ["bad.yaml:4: not a valid yaml config"]),
    "train_net_override": (
        "train_net", "invoke_main",
        lambda b, o: ["--config-file", BOXES_CONFIG, "SOLVER.MAX_ITER", "ten",
                      "OUTPUT_DIR", f"{o}/run"],
        ["SOLVER.MAX_ITER ten", "Type mismatch"]),
    "demo_thresholds": (
        "demo", "main",
        lambda b, o: ["--config-file", BOXES_CONFIG, "--input", b["in.mp4"], "--output",
                      f"{o}/out.mp4", "--boxes", b["gt.csv"], "--thresholds",
                      b["thresholds.json"], "--random-weights", "--no-progress"],
        ["thresholds.json: not a JSON document", "line 2"]),
    "extract_feature_bank_yaml": (
        "extract_feature_bank", "run",
        lambda b, o: ["--config-file", b["bad.yaml"], "--kind", "lfb", "--output", f"{o}/bank"],
        ["bad.yaml:4"]),
    "dump_proposals_yaml": (
        "dump_proposals", "main",
        lambda b, o: ["--config-file", b["bad.yaml"], "--video", b["in.mp4"], "--csv",
                      f"{o}/boxes.csv"],
        ["bad.yaml:4"]),
    "calibrate_thresholds_csv_row": (
        "calibrate_thresholds", "main",
        lambda b, o: ["-g", b["rows.csv"], "-d", b["gt.csv"], "-l", b["labels.pbtxt"],
                      "-o", f"{o}/t.json"],
        ["rows.csv, line 2"]),
    "video_map_predictions": (
        "video_map", "main",
        lambda b, o: ["--dataset", "aca_world_val", "--predictions", f"{o}/missing.csv"],
        ["missing.csv"]),
    "quickstart_config": (
        "quickstart", "main",
        lambda b, o: ["--config", b["bad.yaml"], "--datasets", str(Path(b["tmp"]) / "datasets"),
                      "--output", f"{o}/qs"],
        ["bad.yaml:4"]),
    "make_synthetic_ava_out_is_a_file": (
        "make_synthetic_ava", "main",
        lambda b, o: ["--out", b["gt.csv"], "--videos", "2", "--no-videos"],
        ["gt.csv"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_gives_one_line(case, bad, tmp_path, capsys, monkeypatch):
    tool, entry, argv, expected = CASES[case]
    monkeypatch.setenv("ACAR_DATASETS", os.environ.get("ACAR_DATASETS", "datasets"))  # quickstart sets it
    monkeypatch.delenv("ACAR_DEBUG", raising=False)
    # In-process only: a log handler that an earlier test bound to its (now closed) captured stream
    # would print "--- Logging error --- Traceback ..."; a real command has its own streams.
    monkeypatch.setattr(logging, "raiseExceptions", False)
    main = getattr(load_tool(tool), entry)
    prog = f"tools/{tool}.py"
    with pytest.raises(SystemExit) as e:
        run_cli(main, argv(bad, tmp_path), prog=prog)
    err = capsys.readouterr().err
    assert e.value.code == USER_ERROR_STATUS, (e.value.code, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith(f"{prog}: error: "), err[-3000:]
    for text in expected:
        assert text in errors[0], (text, errors[0])


def test_evaluator_one_line(bad, capsys):
    from ava_eval.cli import main

    code = main(["-g", bad["gt.csv"], "-d", bad["six_columns.csv"], "-l", bad["labels.pbtxt"]])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip() == (f"acar-ava-eval: error: --detections: {bad['six_columns.csv']}, line 1: "
                           "expected 7 or 8 columns (video_id,timestamp,x1,y1,x2,y2,action_id,"
                           "score), got 6: ['vid1', '0902', '0.1', '0.1', '0.5', '0.5']"), err


def test_debug_shows_the_traceback(bad, tmp_path, monkeypatch):
    monkeypatch.delenv("ACAR_DEBUG", raising=False)
    main = load_tool("convert_annotations").main
    argv = ["cvat-to-csv", bad["no_size.xml"], bad["labels.pbtxt"], str(tmp_path / "a.csv"),
            "--video-id", "v"]
    with pytest.raises(ValueError, match="original_size"):
        run_cli(main, argv + ["--debug"])
    monkeypatch.setenv("ACAR_DEBUG", "1")
    with pytest.raises(ValueError, match="original_size"):
        run_cli(main, argv)


def test_a_bug_is_not_a_user_error(monkeypatch):
    monkeypatch.delenv("ACAR_DEBUG", raising=False)

    def buggy(argv):
        return {}["missing"]  # a KeyError from code, not from an input file

    with pytest.raises(KeyError):
        run_cli(buggy, [])


def _shell(*argv: str, env=None):
    return subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})), timeout=300)


def test_from_the_shell(bad, tmp_path):
    """The issue's case as a command: one line, status 2; with --debug the traceback."""
    argv = ["tools/convert_annotations.py", "cvat-to-csv", bad["no_size.xml"], bad["labels.pbtxt"],
            str(tmp_path / "a.csv"), "--video-id", "v"]
    proc = _shell(*argv)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"tools/convert_annotations.py: error: {bad['no_size.xml']}: no <original_size><width>/"
        "<height> in <meta>; export with 'CVAT for video 1.1' (boxes are normalized by the frame "
        "size)"], proc.stderr
    proc = _shell(*argv, "--debug")
    assert proc.returncode == 1 and "Traceback" in proc.stderr, proc.stderr
    assert "ValueError" in proc.stderr.splitlines()[-1], proc.stderr

    proc = _shell("tools/train_net.py", "--config-file", bad["bad.yaml"],
                  "OUTPUT_DIR", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"tools/train_net.py: error: {bad['bad.yaml']}:4: not a valid yaml config (expected ',' "
        "or ']', but got '<stream end>')"), proc.stderr
    assert not (tmp_path / "run").exists()  # refused before the output folder is made
