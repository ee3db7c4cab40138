"""
Checkpoints and proposal / annotation pickles are read without running code from them: a crafted
file whose ``__reduce__`` would write a marker file raises ``UnsafePickleError`` (naming the
file, the global and the override) and the marker never appears; the plain-data formats
(PySlowFast Caffe2 ``.pkl``, Python 2 pickles, legacy ``torch.save`` files, arrays inside
``.pth``) still load; full unpickling only with the explicit switch.
"""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from acar_d2.checkpoint import (
    ACARCheckpointer,
    UnsafePickleError,
    convert_checkpoint,
    load_checkpoint_object,
)
from acar_d2.data.file_readers import load_pickle, read_dense_proposals
from acar_d2.engine import setup_cfg

from .conftest import StandIn, load_train_net


class Payload:
    """Unpickling this calls ``exec``, which writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


@pytest.fixture(autouse=True)
def no_env_override(monkeypatch):
    monkeypatch.delenv("ACAR_ALLOW_UNSAFE_PICKLE", raising=False)


def crafted_pth(tmp_path: Path) -> Path:
    path = tmp_path / "crafted.pth"
    torch.save({"model": StandIn().state_dict(), "trainer": Payload(tmp_path / "marker")}, path)
    return path


def crafted_pkl(tmp_path: Path, obj_key: str = "blobs") -> Path:
    path = tmp_path / "crafted.pkl"
    with open(path, "wb") as f:
        pickle.dump({obj_key: {"conv1_w": np.zeros((2, 3))}, "x": Payload(tmp_path / "marker")}, f,
                    protocol=2)
    return path


def test_crafted_pth_is_refused_and_its_code_never_runs(tmp_path):
    path = crafted_pth(tmp_path)
    with pytest.raises(UnsafePickleError) as e:
        ACARCheckpointer(StandIn()).load(str(path))
    msg = str(e.value)
    assert "crafted.pth" in msg and "exec" in msg and "MODEL.ALLOW_UNSAFE_PICKLE" in msg, msg
    assert "run arbitrary code" in msg
    assert not (tmp_path / "marker").exists()
    with pytest.raises(UnsafePickleError):
        convert_checkpoint(str(path))
    assert not (tmp_path / "marker").exists()


def test_crafted_caffe2_pkl_is_refused_and_its_code_never_runs(tmp_path):
    path = crafted_pkl(tmp_path)
    pattern = (r"crafted\.pkl: refused to unpickle this checkpoint: "
               r"it references '(__builtin__|builtins)\.exec'")
    with pytest.raises(UnsafePickleError, match=pattern):
        ACARCheckpointer(StandIn()).load(str(path))
    assert not (tmp_path / "marker").exists()


def test_crafted_proposal_pickle_is_refused_and_its_code_never_runs(tmp_path):
    path = tmp_path / "dense_proposals_val.pkl"
    with open(path, "wb") as f:
        pickle.dump({"vid,0902": np.zeros((1, 5), np.float32), "x": Payload(tmp_path / "marker")}, f)
    with pytest.raises(UnsafePickleError) as e:
        read_dense_proposals(str(path))
    assert "dense_proposals_val.pkl" in str(e.value) and "proposal file" in str(e.value)
    assert "ACAR_ALLOW_UNSAFE_PICKLE=1" in str(e.value)
    with pytest.raises(UnsafePickleError):
        load_pickle(str(path), "UCF101-24 annotation pickle")
    assert not (tmp_path / "marker").exists()


def test_plain_data_formats_still_load(tmp_path):
    src = StandIn()
    # zip .pth with NumPy arrays and scalars (e.g. converted elsewhere)
    npz = tmp_path / "numpy_inside.pth"
    torch.save({"model": {k: v.numpy() for k, v in src.state_dict().items()},
                "iteration": np.int64(5)}, npz)
    obj = load_checkpoint_object(str(npz))
    assert np.array_equal(obj["model"]["roi_heads.fc.weight"], src.roi_heads.fc.weight.detach().numpy())
    # legacy (non-zip) torch.save file
    legacy = tmp_path / "legacy.pth"
    torch.save({"model": src.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    dst = StandIn(head_width=4)
    torch.nn.init.zeros_(dst.roi_heads.fc.weight)
    ACARCheckpointer(dst, strict=True).load(str(legacy))
    assert torch.equal(dst.roi_heads.fc.weight, src.roi_heads.fc.weight)
    # Python 2 style (protocol 2, latin-1 str buffers) proposal pickle with an OrderedDict
    from collections import OrderedDict

    boxes = np.array([[0.1, 0.2, 0.5, 0.9, 0.97]], np.float32)
    p2 = tmp_path / "proposals_py2.pkl"
    with open(p2, "wb") as f:
        pickle.dump(OrderedDict([("vid,0902", boxes), ("vid,0903", [])]), f, protocol=2)
    got = read_dense_proposals(str(p2))
    assert np.array_equal(got[("vid", 902)], boxes) and got[("vid", 903)].shape == (0, 5)


def test_full_unpickling_only_with_the_explicit_switch(tmp_path, monkeypatch):
    path = crafted_pth(tmp_path)
    cfg = setup_cfg(None, ["MODEL.DEVICE", "cpu", "MODEL.ALLOW_UNSAFE_PICKLE", "True"])
    ACARCheckpointer.from_config(StandIn(), cfg).load(str(path))
    assert (tmp_path / "marker").read_text() == "ran"  # the switch really unpickles fully
    (tmp_path / "marker").unlink()
    monkeypatch.setenv("ACAR_ALLOW_UNSAFE_PICKLE", "1")
    read_dense_proposals_path = crafted_pkl(tmp_path, "unused")
    load_pickle(str(read_dense_proposals_path))
    assert (tmp_path / "marker").exists()


def test_train_net_flag_names_the_risk_and_sets_the_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("ACAR_ALLOW_UNSAFE_PICKLE", "0")  # restored (removed) after the test
    train_net = load_train_net()
    parser = train_net.argument_parser()
    assert "RUN CODE" in parser.format_help().replace("\n", " ").replace("  ", " ")
    args = parser.parse_args(["--allow-unsafe-pickle", "--eval-only", "MODEL.DEVICE", "cpu",
                              "OUTPUT_DIR", str(tmp_path)])
    cfg = train_net.setup(args)
    assert cfg.MODEL.ALLOW_UNSAFE_PICKLE is True
    assert os.environ.get("ACAR_ALLOW_UNSAFE_PICKLE") == "1"
    assert setup_cfg(None, ["MODEL.DEVICE", "cpu"]).MODEL.ALLOW_UNSAFE_PICKLE is False


def test_crafted_detector_pkl_is_refused_and_its_code_never_runs(tmp_path):
    """MODEL.PERSON_DETECTOR.WEIGHTS as a model-zoo style .pkl: checked before detectron2 reads it."""
    from acar_d2.checkpoint import load_person_detector_weights
    from acar_d2.modeling.person_detector import build_person_detector

    path = crafted_pkl(tmp_path, obj_key="model")
    cfg = setup_cfg(None, [
        "MODEL.DEVICE", "cpu",
        "MODEL.PERSON_DETECTOR.NAME", "PersonDetector",
        "MODEL.PERSON_DETECTOR.CONFIG_FILE",
        "configs/Synthetic/person_detector/faster_rcnn_R18_tiny_person.yaml",
        "MODEL.PERSON_DETECTOR.WEIGHTS", str(path),
    ])
    detector = build_person_detector(cfg)  # reads no file
    with pytest.raises(UnsafePickleError, match="crafted.pkl"):
        load_person_detector_weights(detector, cfg.MODEL.PERSON_DETECTOR.WEIGHTS)
    assert not (tmp_path / "marker").exists()
