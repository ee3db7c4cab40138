"""tools/demo.py --relations on the tiny synthetic ACAR model (Base-Synthetic.yaml, HR2O nl depth 2,
2x2 downsample, 128 px clips): the JSON carries each actor's relation fields per the documented
schema, the maps are drawn on the video, and a head without HR2O is refused before anything is
written."""
import json

import jsonschema
import numpy as np
import pytest

from demo.outputs import DEMO_JSON_SCHEMA
from tests.utils.demo_helpers import BOXES_CONFIG, BOXES_OPTS, decode, saved_model, write_test_video
from tests.utils.test_demo_cli import run_demo

# 160x120 frames -> 170x128 clips zero-padded to 170x170 -> 11x11 feature cells of 170/11 px, the
# valid 9x11 of them -> 7x9 after the 3x3 conv2 -> a 4x5 relation grid after the 2x2 pool.
OPTS = BOXES_OPTS + ["INPUT.CLIP.SHORT_SIDE", "128"]
CELL_XY = (170 / 11 * 160 / 170, 170 / 11 * 120 / 128)  # one feature cell in frame px


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("relations")
    weights = saved_model(BOXES_CONFIG, OPTS, tmp)
    video = tmp / "walk.mp4"
    write_test_video(video, n=16, fps=8)
    (tmp / "boxes.csv").write_text(
        "walk,0,0.05,0.2,0.3,0.8,,0.9\nwalk,0,0.6,0.3,0.8,0.9,,0.9\nwalk,0,0.35,0.1,0.5,0.5,,0.9\n"
        "walk,1,0.2,0.25,0.45,0.75,,0.9\n")
    out = {}
    for name, extra in (("plain", []), ("relations", ["--relations"])):
        code, err = run_demo("--config-file", BOXES_CONFIG, "--input", video, "--boxes",
                             tmp / "boxes.csv", "--output", tmp / f"{name}.mp4", "--json",
                             tmp / f"{name}.json", *extra, *OPTS, "MODEL.WEIGHTS", weights)
        assert code == 0, err
        out[name] = (json.loads((tmp / f"{name}.json").read_text()), decode(tmp / f"{name}.mp4"))
    return dict(out, tmp=tmp, weights=weights, video=video)


def test_json_has_each_actors_relation_per_the_schema(runs):
    doc, _ = runs["relations"]
    jsonschema.validate(doc, DEMO_JSON_SCHEMA)
    assert [len(k["actors"]) for k in doc["key_frames"]] == [3, 1]
    for k in doc["key_frames"]:
        for a in k["actors"]:
            rel = a["relation"]
            cmap = np.array(rel["context_map"])
            assert rel["grid_size"] == [4, 5] and cmap.shape == (4, 5)
            assert cmap.sum() == pytest.approx(1.0, abs=1e-5)
            assert len(rel["actor_weights"]) == len(k["actors"])
            assert sum(rel["actor_weights"]) == pytest.approx(1.0, abs=1e-5)
            # cell centres from 1.5 feature cells, every 2 cells
            assert rel["grid_origin_xy"] == pytest.approx([1.5 * c for c in CELL_XY], abs=0.01)
            assert rel["grid_step_xy"] == pytest.approx([2 * c for c in CELL_XY], abs=0.01)
            row, col = np.unravel_index(cmap.argmax(), cmap.shape)
            assert rel["peak_xy"] == pytest.approx(
                [rel["grid_origin_xy"][0] + col * rel["grid_step_xy"][0],
                 rel["grid_origin_xy"][1] + row * rel["grid_step_xy"][1]], abs=0.02)
            assert 0 <= rel["peak_xy"][0] < 160 and 0 <= rel["peak_xy"][1] < 120
    lone = doc["key_frames"][1]["actors"][0]["relation"]
    assert lone["actor_weights"] == [1.0]  # alone: all its weight on itself, a flat map
    assert np.allclose(lone["context_map"], 1 / 20, atol=1e-6)
    bad = json.loads(json.dumps(doc))
    bad["key_frames"][0]["actors"][0]["relation"]["actor_weights"][0] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, DEMO_JSON_SCHEMA)


def test_relations_change_the_drawing_not_the_scores(runs):
    (plain, plain_frames), (rel, rel_frames) = runs["plain"], runs["relations"]
    assert all("relation" not in a for k in plain["key_frames"] for a in k["actors"])
    assert [a["scores"] for k in plain["key_frames"] for a in k["actors"]] == \
        [a["scores"] for k in rel["key_frames"] for a in k["actors"]]
    assert len(plain_frames) == len(rel_frames) == 16
    assert np.abs(plain_frames[0].astype(int) - rel_frames[0]).mean() > 1


def test_a_head_without_hr2o_is_refused_before_writing(runs):
    tmp = runs["tmp"]
    code, _ = run_demo("--config-file", BOXES_CONFIG, "--input", runs["video"], "--boxes",
                       tmp / "boxes.csv", "--output", tmp / "x.mp4", "--relations",
                       "--random-weights", *OPTS, "MODEL.ROI_HEADS.NAME", "BaselineROIHeads")
    assert "no HR2O block" in str(code)
    assert not (tmp / "x.mp4").exists()
