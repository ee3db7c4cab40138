"""UCF101-24: pickle and CSV sources give the same key frames; stride; bad input."""
import pickle

import numpy as np
import pytest
from PIL import Image

from acar_d2.data.datasets.builtin import UCF24_CLASSES
from acar_d2.data.datasets.ucf101_24 import load_ucf24_instances, ucf24_pickle_to_csv

VIDEOS = {"Biking/v_Biking_g01_c01": 10, "Fencing/v_Fencing_g02_c01": 8}


@pytest.fixture
def ucf(tmp_path):
    root = tmp_path / "rgb-images"
    for vid, n in VIDEOS.items():
        (root / vid).mkdir(parents=True)
        for k in range(1, n + 1):
            Image.new("RGB", (32, 24)).save(root / vid / f"{k:05d}.jpg")
    tube = lambda f0, f1, box: np.array([[f, *box] for f in range(f0, f1 + 1)], dtype=np.float64)
    gt = {
        "labels": UCF24_CLASSES,
        "nframes": VIDEOS,
        "resolution": {v: (24, 32) for v in VIDEOS},
        "train_videos": [["Biking/v_Biking_g01_c01"]],
        "test_videos": [["Fencing/v_Fencing_g02_c01"]],
        "gttubes": {
            # Biking (label 2): one tube on frames 1..10, a second on 4..6; box overshoots by 1 px.
            "Biking/v_Biking_g01_c01": {2: [tube(1, 10, (1, 2, 20, 23)), tube(4, 6, (5, 5, 33, 20))]},
            "Fencing/v_Fencing_g02_c01": {6: [tube(2, 7, (0, 0, 10, 10))]},
        },
    }
    pkl = tmp_path / "UCF101v2-GT.pkl"
    pkl.write_bytes(pickle.dumps(gt))
    ucf24_pickle_to_csv(str(pkl), str(tmp_path / "annotations"))
    return tmp_path


def test_pickle_and_csv_agree(ucf):
    from_pkl = load_ucf24_instances(str(ucf / "UCF101v2-GT.pkl"), str(ucf / "rgb-images"))
    from_csv = load_ucf24_instances(
        str(ucf / "annotations" / "train.csv"), str(ucf / "rgb-images"),
        classes_file=str(ucf / "annotations" / "classes.txt"),
    )
    assert len(from_pkl) == len(from_csv) == 10  # every annotated frame of the train video
    for a, b in zip(from_pkl, from_csv):
        assert (a["timestamp"], a["key_frame_index"]) == (b["timestamp"], b["key_frame_index"])
        assert [x["action_ids"] for x in a["annotations"]] == [x["action_ids"] for x in b["annotations"]]
        np.testing.assert_allclose([x["bbox"] for x in a["annotations"]],
                                   [x["bbox"] for x in b["annotations"]], atol=0.01)
    d4 = from_pkl[3]
    assert d4["timestamp"] == 4 and d4["key_frame_index"] == 3 and len(d4["annotations"]) == 2
    assert d4["annotations"][0]["action_ids"] == [3]  # 0-based label 2 -> id 3 (Biking)
    assert UCF24_CLASSES[2] == "Biking"
    assert d4["annotations"][1]["bbox"] == [5.0, 5.0, 32.0, 20.0]  # clipped to the 32-px width
    assert (d4["height"], d4["width"], d4["num_frames"]) == (24, 32, 10)


def test_key_frame_stride_and_test_split(ucf):
    train = load_ucf24_instances(str(ucf / "UCF101v2-GT.pkl"), str(ucf / "rgb-images"),
                                 key_frame_stride=4)
    assert [d["timestamp"] for d in train] == [1, 5, 9]
    assert [len(d["annotations"]) for d in train] == [1, 2, 1]
    test = load_ucf24_instances(str(ucf / "UCF101v2-GT.pkl"), str(ucf / "rgb-images"), split="test")
    assert [d["timestamp"] for d in test] == list(range(2, 8))
    assert test[0]["annotations"][0]["action_ids"] == [7]


def test_bad_input(ucf, tmp_path):
    classes = str(ucf / "annotations" / "classes.txt")
    bad = tmp_path / "bad.csv"
    bad.write_text("Biking/v_Biking_g01_c01,1,0,0,5,5,25,0\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 1: action_id 25 is not in 1..24"):
        load_ucf24_instances(str(bad), str(ucf / "rgb-images"), classes_file=classes)
    bad.write_text("Biking/v_Biking_g01_c01,11,0,0,5,5,3,0\n")
    with pytest.raises(ValueError, match="frame 11: frame outside the video's 10 frames"):
        load_ucf24_instances(str(bad), str(ucf / "rgb-images"), classes_file=classes)
    bad.write_text("Biking/v_Biking_g01_c01,1,0,0,5\n")
    with pytest.raises(ValueError, match="bad.csv, line 1: expected 8 columns"):
        load_ucf24_instances(str(bad), str(ucf / "rgb-images"), classes_file=classes)
    bad.write_text("Nope/v_x,1,0,0,5,5,3,0\n")
    with pytest.raises(FileNotFoundError, match="Nope/v_x"):
        load_ucf24_instances(str(bad), str(ucf / "rgb-images"), classes_file=classes)
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(pickle.dumps({"labels": []}))
    with pytest.raises(KeyError, match="missing key 'gttubes'"):
        load_ucf24_instances(str(broken), str(ucf / "rgb-images"))
    broken.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"broken.pkl: cannot unpickle UCF101-24 annotation pickle"):
        load_ucf24_instances(str(broken), str(ucf / "rgb-images"))
    with pytest.raises(FileNotFoundError, match="UCF101-24 annotation pickle not found: .*gone.pkl"):
        load_ucf24_instances(str(tmp_path / "gone.pkl"), str(ucf / "rgb-images"))
