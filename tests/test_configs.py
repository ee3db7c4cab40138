"""
Every yaml under ``configs/`` loads through its ``_BASE_`` chain and builds a model; file names
agree with what the files configure (model_backbone_schedule_dataset naming).
"""
import re
from pathlib import Path

import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model

from acar_d2.data.class_subset import reset_class_subsets
from acar_d2.data.synthetic.scene import CLASSES as SYNTHETIC_CLASSES
from acar_d2.engine import setup_cfg

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
# acar_d2 configs; configs/**/person_detector/ hold the detectron2 configs of person detectors.
ALL_CONFIGS = sorted(p for p in CONFIG_DIR.rglob("*.yaml") if "person_detector" not in p.parts)
# Leaf configs (Base-*.yaml are only inherited from).
LEAF_CONFIGS = [p for p in ALL_CONFIGS if not p.name.startswith("Base-")]
# The 60 evaluated AVA classes in ascending id order have the pose classes first,
# ids 1, 3..14 = indices 0..12.
AVA_POSE_INDICES = list(range(13))


@pytest.fixture(autouse=True)
def _restore_class_subsets():
    """A config with DATASETS.CLASSES makes its splits subsets; the next test sees them whole."""
    yield
    reset_class_subsets()


def load_config(path: Path):
    return setup_cfg(str(path), freeze=False)


def _config_id(path: Path) -> str:
    return str(path.relative_to(CONFIG_DIR))


def test_config_tree_is_complete():
    names = {_config_id(p) for p in ALL_CONFIGS}
    for required in [
        "Base-AVA.yaml",
        "AVA/SLOWFAST_R50_ACAR_HR2O.yaml",
        "AVA/SLOWFAST_R50_baseline.yaml",
        "AVA/SLOWFAST_R101_ACAR_HR2O_DEPTH1.yaml",
        "AVA/actor_actor_SLOWFAST_R50_35k_ava_v2.2.yaml",
        "AVA/actor_context_SLOWFAST_R50_35k_ava_v2.2.yaml",
        "Synthetic/Base-Synthetic.yaml",
    ]:
        assert required in names, (required, sorted(names))
    synthetic = [n for n in names if n.startswith("Synthetic/") and "quick_schedules" not in n]
    for head in ["baseline", "actor_actor", "actor_context", "acar", "vit_linear", "vit_acar"]:
        assert any(Path(n).name.startswith(head + "_") for n in synthetic), (head, synthetic)


def test_official_schedule_in_base_ava():
    """ACAR Sec. 4.1 / official R50 yaml: SGD, Nesterov momentum 0.9, wd 1e-7, batch 32,
    peak LR 0.064 reached by a linear warm-up from 0.008, x0.1 at 33k and 34k of 35k."""
    cfg = load_config(CONFIG_DIR / "AVA" / "SLOWFAST_R50_ACAR_HR2O.yaml")
    s = cfg.SOLVER
    assert (s.IMS_PER_BATCH, s.MOMENTUM, s.NESTEROV, s.WEIGHT_DECAY) == (32, 0.9, True, 1e-7)
    assert (s.BASE_LR, s.WARMUP_METHOD, s.GAMMA) == (0.064, "linear", 0.1)
    assert abs(s.BASE_LR * s.WARMUP_FACTOR - 0.008) < 1e-12, s.WARMUP_FACTOR
    assert (s.MAX_ITER, tuple(s.STEPS)) == (35000, (33000, 34000)), (s.MAX_ITER, s.STEPS)
    # official freeze_bn: frozen statistics, trainable scale / shift
    assert cfg.MODEL.SLOWFAST.NORM == "FrozenStatsBN", cfg.MODEL.SLOWFAST.NORM


@pytest.mark.parametrize("path", LEAF_CONFIGS, ids=_config_id)
def test_name_matches_content(path: Path):
    cfg = load_config(path)
    name = path.stem
    head = cfg.MODEL.ROI_HEADS.NAME
    if name.startswith("baseline_") or name.endswith("_baseline"):
        assert head == "BaselineROIHeads", head
    elif name.startswith("actor_actor_"):
        assert head == "ActorActorROIHeads", head
    elif name.startswith("actor_context_"):
        assert head == "ActorContextROIHeads", head
    elif name.startswith("acar_") or "ACAR" in name:
        assert head == "ACARROIHeads", head
    elif name.startswith("pyslowfast_"):
        assert head == "PySlowFastROIHeads", head
    m = re.search(r"R(18|50|101)", name)
    if m:
        assert cfg.MODEL.SLOWFAST.DEPTH == int(m.group(1)), (name, cfg.MODEL.SLOWFAST.DEPTH)
    m = re.search(r"depth(\d)", name, re.IGNORECASE)
    if m:
        assert cfg.MODEL.ACTION_HEAD.HR2O_DEPTH == int(m.group(1)), cfg.MODEL.ACTION_HEAD.HR2O_DEPTH
    for op in ["gattn", "rn", "avg", "nl"]:
        if f"_hr2o_{op}_" in name:
            assert cfg.MODEL.ACTION_HEAD.HR2O_NAME == op, cfg.MODEL.ACTION_HEAD.HR2O_NAME
    has_nl = any(len(locs) > 0 for locs in cfg.MODEL.SLOWFAST.NONLOCAL_LOCATIONS)
    assert has_nl == ("_NL_" in name), (name, cfg.MODEL.SLOWFAST.NONLOCAL_LOCATIONS)
    m = re.search(r"_(\d+)k_", name)
    if m:
        assert round(cfg.SOLVER.MAX_ITER / 1000) == int(m.group(1)), cfg.SOLVER.MAX_ITER
    m = re.search(r"ava_v2\.(\d)", name)
    if m:
        version = f"v2.{m.group(1)}"
        for ds in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST):
            assert version in ds, (version, ds)
    assert list(cfg.SOLVER.STEPS) == sorted(cfg.SOLVER.STEPS) and max(cfg.SOLVER.STEPS, default=0) < (
        cfg.SOLVER.MAX_ITER
    ), (cfg.SOLVER.STEPS, cfg.SOLVER.MAX_ITER)


# One build per distinct MODEL section (AVA v2.1 / v2.2 variants share one).
_BUILT = {}


class WeightReadForbidden(AssertionError):
    pass


@pytest.fixture
def offline(monkeypatch):
    """No network and no weight file: building a model must read neither (detectron2's split:
    ``build_model`` builds, a checkpointer loads). Every attempt raises and is recorded."""
    import socket
    import urllib.request

    from detectron2.utils.file_io import PathManager

    attempts = []

    def refuse(what):
        def _raise(*args, **kwargs):
            attempts.append((what, args[:2]))
            raise WeightReadForbidden(f"{what} called while building a model: {args[:2]}")
        return _raise

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urlopen"))
    monkeypatch.setattr(torch, "load", refuse("torch.load"))
    for name in ("get_local_path", "open"):
        original = getattr(PathManager, name)

        def guarded(path, *args, _original=original, _name=name, **kwargs):
            if "://" in str(path):
                refuse(f"PathManager.{_name}")(path)
            return _original(path, *args, **kwargs)
        monkeypatch.setattr(PathManager, name, guarded)
    return attempts


@pytest.mark.parametrize("path", LEAF_CONFIGS, ids=_config_id)
def test_config_builds(path: Path, offline):
    """Every config builds with its weight keys as written (configs/Demo name the detectron2://
    COCO detector) and no network: building reads no weight file."""
    cfg = load_config(path)
    cfg.MODEL.DEVICE = "cpu"
    if path.parent.name == "Demo":
        assert cfg.MODEL.PERSON_DETECTOR.WEIGHTS.startswith("detectron2://"), path
    # The configs carry their pose classes (no dataset file is needed to build a model); they must
    # be the ones the dataset definitions fix.
    pose = list(cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES)
    if cfg.DATASETS.TRAIN[0].startswith("aca_world"):
        assert cfg.MODEL.ACTION_HEAD.NUM_CLASSES == len(SYNTHETIC_CLASSES), len(SYNTHETIC_CLASSES)
        assert pose == [i for i, c in enumerate(SYNTHETIC_CLASSES) if c.group == "pose"], pose
    elif cfg.DATASETS.CLASSES:  # a class subset: its own count and pose classes
        meta = MetadataCatalog.get(cfg.DATASETS.TEST[0])
        assert list(meta.action_ids) == sorted(cfg.DATASETS.CLASSES), meta.action_ids
        assert cfg.MODEL.ACTION_HEAD.NUM_CLASSES == len(cfg.DATASETS.CLASSES)
        assert pose == list(meta.pose_class_indices), (pose, meta.pose_class_indices)
    elif cfg.DATASETS.TRAIN[0].startswith("ava"):
        assert cfg.MODEL.ACTION_HEAD.NUM_CLASSES == 60, cfg.MODEL.ACTION_HEAD.NUM_CLASSES
        # PySlowFast's AVA models: a sigmoid on every class (no pose softmax)
        assert pose == (AVA_POSE_INDICES if cfg.MODEL.ACTION_HEAD.POSE_SOFTMAX else []), pose
    vit = cfg.MODEL.BACKBONE.NAME == "build_videomae_backbone"
    if vit:  # real widths, at most 2 blocks (ViT-H has 32): the same code, seconds on a CPU
        cfg.MODEL.VIDEOMAE.DEPTH = min(cfg.MODEL.VIDEOMAE.DEPTH, 2)
    key = cfg.MODEL.dump()
    if key not in _BUILT:
        torch.manual_seed(0)
        model = build_model(cfg)
        shapes = model.backbone.output_shape()
        _BUILT[key] = (
            sum(p.numel() for p in model.parameters()),
            type(model.roi_heads).__name__,
            {k: v.channels for k, v in shapes.items()},
        )
        del model
    assert offline == []
    num_params, head_name, channels = _BUILT[key]
    assert head_name == cfg.MODEL.ROI_HEADS.NAME, (head_name, cfg.MODEL.ROI_HEADS.NAME)
    if vit:  # one map of the ViT's width
        assert channels == {"vit": cfg.MODEL.VIDEOMAE.EMBED_DIM} and list(cfg.MODEL.ROI_HEADS.IN_FEATURES) == ["vit"]
        return
    # Slow pathway ends at 32x the stem width (res5 of bottleneck blocks, also used at depth 18),
    # fast at 1/beta of that.
    assert channels["slow"] == cfg.MODEL.SLOWFAST.WIDTH * 32, channels
    if cfg.MODEL.BACKBONE.NAME == "build_slowonly_backbone":  # the slow pathway alone
        assert list(channels) == ["slow"] == list(cfg.MODEL.ROI_HEADS.IN_FEATURES), channels
    else:
        assert channels["fast"] == channels["slow"] // cfg.MODEL.SLOWFAST.BETA_INV, channels
    assert num_params > 0


# Run in a fresh interpreter: the builtin datasets are registered from $ACAR_DATASETS at import.
_DATA_FREE_SCRIPT = r"""
import json, sys
import torch
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from acar_d2.engine import setup_cfg

out, seen = {}, {}
for path in sys.argv[1:]:
    cfg = setup_cfg(path, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.PERSON_DETECTOR.WEIGHTS", ""],
                    freeze=False)
    if cfg.MODEL.BACKBONE.NAME == "build_videomae_backbone":  # real widths, at most 2 blocks
        cfg.MODEL.VIDEOMAE.DEPTH = min(cfg.MODEL.VIDEOMAE.DEPTH, 2)
    # The metadata of the configured splits is there without any file.
    names = [MetadataCatalog.get(d).get("action_classes") for d in cfg.DATASETS.TEST]
    key = cfg.MODEL.dump() + str(cfg.INPUT.CLIP.NUM_FRAMES)
    if key not in seen:
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        clip = torch.randn(3, cfg.INPUT.CLIP.NUM_FRAMES, 64, 64)
        props = Instances((64, 64))
        props.proposal_boxes = Boxes(torch.tensor([[4.0, 6.0, 40.0, 60.0], [20.0, 2.0, 60.0, 50.0]]))
        props.scores = torch.ones(2)
        x = {"clip": clip, "proposals": props, "height": 64, "width": 64}
        if cfg.MODEL.PERSON_DETECTOR.NAME:
            # The key frame at detector resolution; the proposal file's boxes win here so that the
            # number of actors is known (a random-init detector may find anybody or nobody).
            x["image"] = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
            cfg.MODEL.PERSON_DETECTOR.TEST_BOX_SOURCE = "file"
            model = build_model(cfg).eval()
        with torch.no_grad():
            inst = model([x])[0]["instances"]
        seen[key] = list(inst.action_scores.shape)
    out[path] = {"scores_shape": seen[key], "num_classes": cfg.MODEL.ACTION_HEAD.NUM_CLASSES,
                 "test_classes": [len(n) if n else 0 for n in names]}
print("RESULT " + json.dumps(out))
"""


def test_every_config_builds_and_runs_without_dataset_files(tmp_path):
    """Issue: a user with only a checkpoint and a video builds every model (no AVA files)."""
    import json
    import os
    import subprocess
    import sys

    empty = tmp_path / "no_datasets"
    empty.mkdir()
    env = dict(os.environ, ACAR_DATASETS=str(empty))
    proc = subprocess.run(
        [sys.executable, "-c", _DATA_FREE_SCRIPT] + [str(p) for p in LEAF_CONFIGS],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    results = json.loads(line[len("RESULT "):])
    assert len(results) == len(LEAF_CONFIGS)
    for path, r in results.items():
        assert r["scores_shape"] == [2, r["num_classes"]], (path, r)
        # AVA and synthetic splits know their class names without files.
        if "/AVA/" in path or "/Synthetic/" in path:
            assert r["test_classes"] == [r["num_classes"]], (path, r)
