"""
Class subsets end to end on the tiny synthetic world (docs/CUSTOM_DATA.md "Class subsets",
docs/CHECKPOINTS.md "Class rows"):

* a run with ``DATASETS.CLASSES`` (4 of the world's 10 classes) trains and evaluates with exactly
  those classes in the evaluator's table, the submission CSV and the checkpoint's class list,
  all with the original label-map ids;
* a full 10-class model narrowed to the subset by loading its checkpoint (no training) gives
  the full model's logits on the kept classes, and so its AP on the kept sigmoid classes; the
  kept pose classes are renormalized between themselves (their APs are printed);
* fine-tuning with ``MODEL.WEIGHTS_CLASS_MAP by_name`` from a file with another label map loads
  every shared tensor, starts the classes the file lacks from the model's initial rows (said in
  the log), and still refuses a missing backbone tensor or another backbone.
"""
import json
import logging
from pathlib import Path

import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model

from acar_d2.checkpoint import (
    ACARCheckpointer,
    CheckpointMismatchError,
    ClassRowError,
    save_detectron2_checkpoint,
)
from acar_d2.data.class_subset import reset_class_subsets
from acar_d2.engine import Trainer
from acar_d2.engine.video_predictor import action_class_ids, action_class_names

from .conftest import INSTANT_CONFIG, VAL, load_train_net, tiny_cfg, tiny_cfg_opts

SUBSET = ["stand", "sit", "carry", "drive"]  # 2 pose (softmax) + 2 sigmoid classes
SUBSET_IDS = [1, 2, 5, 6]
SUBSET_OPTS = ["DATASETS.CLASSES", str(SUBSET), "MODEL.ACTION_HEAD.NUM_CLASSES", "4",
               "MODEL.ACTION_HEAD.POSE_CLASS_INDICES", "[]"]
SCHEDULE = ["SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "100", "TEST.EVAL_PERIOD", "4",
            "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "(3,)", "SOLVER.BASE_LR", "0.05"]


@pytest.fixture(autouse=True)
def _whole_splits_after():
    yield
    reset_class_subsets()


def _train(output_dir: Path, opts=()):
    """tools/train_net.py; returns the final evaluation ({"ava": {"AP-stand": ..}}) of metrics.json."""
    argv = ["--config-file", str(INSTANT_CONFIG)] + tiny_cfg_opts(output_dir) + SCHEDULE + list(opts)
    load_train_net().main(default_argument_parser().parse_args(argv))
    with open(output_dir / "metrics.json") as f:
        last = [json.loads(line) for line in f if "ava/frame_mAP@0.5" in line][-1]
    return {"ava": {k.split("/", 1)[1]: v for k, v in last.items() if k.startswith("ava/")}}


@pytest.fixture(scope="module")
def full_run(tiny_world, tmp_path_factory):
    """A 10-class model trained a few steps: (its output folder, its final evaluation)."""
    out = tmp_path_factory.mktemp("full")
    results = _train(out)
    reset_class_subsets()
    return out, results["ava"]


def test_subset_run_trains_and_scores_exactly_the_kept_classes(tiny_world, tmp_path):
    results = _train(tmp_path, SUBSET_OPTS)["ava"]
    aps = sorted(k for k in results if k.startswith("AP-"))
    assert aps == sorted(f"AP-{n}" for n in SUBSET), aps
    assert sorted(k for k in results if k.startswith("mAP-")) == ["mAP-person_object", "mAP-pose"]
    meta = MetadataCatalog.get(VAL)
    assert list(meta.action_ids) == SUBSET_IDS and list(meta.action_classes) == SUBSET
    assert list(meta.pose_class_indices) == [0, 1], meta.pose_class_indices
    # the submission CSV: the original label-map ids, those only
    csv = tmp_path / "inference" / VAL / f"predictions_{VAL}.csv"
    ids = {int(line.split(",")[6]) for line in csv.read_text().splitlines()}
    assert ids == set(SUBSET_IDS), ids
    # the checkpoint lists its classes (what narrowing / fine-tuning read)
    saved = torch.load(tmp_path / "model_final.pth", map_location="cpu", weights_only=False)
    assert saved["classes"] == {"ids": SUBSET_IDS, "names": SUBSET}, saved["classes"]
    assert saved["model"]["roi_heads.fc2.weight"].shape[0] == 4


def test_demo_class_table_keeps_the_original_ids(tiny_world, tmp_path):
    cfg = tiny_cfg(tmp_path, SUBSET_OPTS)
    assert action_class_ids(cfg) == SUBSET_IDS and action_class_names(cfg) == SUBSET


def test_num_classes_of_another_size_is_an_error_naming_the_key(tiny_world, tmp_path):
    with pytest.raises(ValueError, match=r"keeps 4 classes .* MODEL.ACTION_HEAD.NUM_CLASSES is 10; "
                                         r"set MODEL.ACTION_HEAD.NUM_CLASSES 4"):
        tiny_cfg(tmp_path, ["DATASETS.CLASSES", str(SUBSET), "MODEL.ACTION_HEAD.NUM_CLASSES", "10"])
    # Left to the dataset (NUM_CLASSES 0, the synthetic configs' value), it is the subset's size.
    cfg = tiny_cfg(tmp_path, ["DATASETS.CLASSES", str(SUBSET)])
    assert cfg.MODEL.ACTION_HEAD.NUM_CLASSES == 4 and list(cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES) == [0, 1]
    with pytest.raises(ValueError, match=r"POSE_CLASS_INDICES \[0, 1, 2, 3\] are not the pose "
                                         r"classes \[0, 1\]"):
        tiny_cfg(tmp_path, SUBSET_OPTS[:4] + ["MODEL.ACTION_HEAD.POSE_CLASS_INDICES", "[0,1,2,3]"])
    with pytest.raises(ValueError, match=r"DATASETS.CLASSES \(dataset .*\): 'jump' is neither a "
                                         r"class name nor a label-map id"):
        tiny_cfg(tmp_path, ["DATASETS.CLASSES", "['stand','jump']"])


def _eval(cfg, weights: Path):
    model = build_model(cfg).eval()
    ACARCheckpointer.from_config(model, cfg, purpose="eval").load(str(weights))
    return model, Trainer.test(cfg, model)["ava"]


def test_narrowed_model_keeps_the_full_models_ap_on_kept_sigmoid_classes(full_run, tmp_path):
    full_dir, full = full_run
    cfg = tiny_cfg(tmp_path, SUBSET_OPTS)
    narrowed, sub = _eval(cfg, full_dir / "model_final.pth")
    state = torch.load(full_dir / "model_final.pth", map_location="cpu", weights_only=False)
    assert torch.equal(narrowed.roi_heads.fc2.weight,
                       state["model"]["roi_heads.fc2.weight"][[i - 1 for i in SUBSET_IDS]])
    print("per-class AP (%), full model -> narrowed:",
          {n: (round(full[f"AP-{n}"], 4), round(sub[f"AP-{n}"], 4)) for n in SUBSET})
    assert sorted(k for k in sub if k.startswith("AP-")) == sorted(f"AP-{n}" for n in SUBSET)
    for name in ("carry", "drive"):  # sigmoid classes: the same scores, the same AP
        assert abs(sub[f"AP-{name}"] - full[f"AP-{name}"]) < 1e-6, (name, sub, full)
    assert full["AP-drive"] > 0 and full["AP-carry"] > 0, full


def test_narrowed_logits_are_the_full_models_columns(full_run, tmp_path):
    full_dir, _ = full_run
    full_cfg = tiny_cfg(tmp_path / "full")
    full_model, _ = _eval(full_cfg, full_dir / "model_final.pth")
    cfg = tiny_cfg(tmp_path / "sub", SUBSET_OPTS)
    model = build_model(cfg).eval()
    ACARCheckpointer.from_config(model, cfg, purpose="eval").load(str(full_dir / "model_final.pth"))
    inputs = [next(iter(Trainer.build_test_loader(cfg, VAL)))[0]]
    with torch.no_grad():
        a = full_model(inputs)[0]["instances"]
        b = model(inputs)[0]["instances"]
    assert len(a) == len(b) > 0
    cols = [i - 1 for i in SUBSET_IDS]
    torch.testing.assert_close(b.action_logits, a.action_logits[:, cols], rtol=1e-5, atol=1e-5)
    # sigmoid classes: the same scores; the 2 kept poses: a softmax between them alone
    torch.testing.assert_close(b.action_scores[:, 2:], a.action_scores[:, cols[2:]])
    torch.testing.assert_close(b.action_scores[:, :2], a.action_logits[:, :2].softmax(1))


def test_a_file_without_its_class_list_narrows_by_the_datasets_full_label_map(full_run, tmp_path):
    full_dir, _ = full_run
    state = torch.load(full_dir / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    save_detectron2_checkpoint(state, tmp_path / "no_classes.pth")  # as an official file
    cfg = tiny_cfg(tmp_path, SUBSET_OPTS)
    model = build_model(cfg)
    ACARCheckpointer.from_config(model, cfg, purpose="eval").load(str(tmp_path / "no_classes.pth"))
    assert torch.equal(model.roi_heads.fc2.weight,
                       state["roi_heads.fc2.weight"][[i - 1 for i in SUBSET_IDS]])
    # rows the dataset's label map cannot describe: the error names the key to set
    cut = dict(state, **{"roi_heads.fc2.weight": state["roi_heads.fc2.weight"][:7]})
    save_detectron2_checkpoint(cut, tmp_path / "seven.pth")
    with pytest.raises(ClassRowError, match=r"\(7, 64\), expected 10 class rows .* set "
                                            r"MODEL.WEIGHTS_LABEL_MAP"):
        ACARCheckpointer.from_config(model, cfg, purpose="eval").load(str(tmp_path / "seven.pth"))


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _official_like_file(full_dir: Path, tmp_path: Path, drop=()):
    """The subset run's weights as an official file would be: no class list, a label map with
    other ids beside it (the same 4 names)."""
    state = torch.load(full_dir / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    for k in drop:
        del state[k]
    path = tmp_path / "published.pth"
    save_detectron2_checkpoint(state, path)
    lmap = tmp_path / "published_label_map.pbtxt"
    lmap.write_text("".join(f'item {{ name: "{n}" id: {11 + i} }}\n' for i, n in enumerate(SUBSET)))
    return path, lmap, state


@pytest.fixture(scope="module")
def subset_run(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("subset")
    _train(out, SUBSET_OPTS)
    reset_class_subsets()
    return out


def test_fine_tune_by_name_loads_shared_tensors_and_reports_new_rows(subset_run, tmp_path):
    path, lmap, state = _official_like_file(subset_run, tmp_path)
    cfg = tiny_cfg(tmp_path, ["MODEL.WEIGHTS_LABEL_MAP", str(lmap)])  # the 10 world classes
    torch.manual_seed(3)
    model = build_model(cfg)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    # by label-map id (the default) the file's ids 11..14 name none of the model's classes
    with pytest.raises(ClassRowError, match="set MODEL.WEIGHTS_CLASS_MAP by_name"):
        ACARCheckpointer.from_config(model, cfg, purpose="train").load(str(path))
    # MODEL.WEIGHTS_STRICT False ("load what fits") still loads, leaving the classifier as built
    cfg.MODEL.WEIGHTS_STRICT = False
    ACARCheckpointer.from_config(model, cfg, purpose="train").load(str(path))
    assert torch.equal(model.roi_heads.fc2.weight, initial["roi_heads.fc2.weight"])
    assert torch.equal(model.roi_heads.fc1.weight, state["roi_heads.fc1.weight"])
    cfg.MODEL.WEIGHTS_STRICT = True
    model.load_state_dict(initial)
    cfg.MODEL.WEIGHTS_CLASS_MAP = "by_name"
    # evaluation never invents rows
    with pytest.raises(ClassRowError, match=r"lacks the classes \['walk', 'lie', 'present'"):
        ACARCheckpointer.from_config(model, cfg, purpose="eval").load(str(path))
    lines = _Lines()
    logging.getLogger("acar_d2.checkpoint.checkpointer").addHandler(lines)
    try:
        ACARCheckpointer.from_config(model, cfg, purpose="train").load(str(path))
    finally:
        logging.getLogger("acar_d2.checkpoint.checkpointer").removeHandler(lines)
    loaded = model.state_dict()
    for k, v in state.items():  # every tensor of the file but the classifier, as it is
        if k != "roi_heads.fc2.weight":
            assert torch.equal(loaded[k], v), k
    fc2 = loaded["roi_heads.fc2.weight"]
    for row, name in zip(SUBSET_IDS, SUBSET):  # rows by name
        assert torch.equal(fc2[row - 1], state["roi_heads.fc2.weight"][SUBSET.index(name)]), name
    for row in (3, 4, 7, 8, 9, 10):  # new classes: the model's own initial rows
        assert torch.equal(fc2[row - 1], initial["roi_heads.fc2.weight"][row - 1]), row
    (said,) = [l for l in lines.lines if "new class" in l]
    assert "4 of the 4 classes" in said and "6 new class(es) ['walk', 'lie', 'present', 'ride', " \
        "'talk_to', 'listen'] keep the head's initial rows" in said, said


def test_fine_tune_by_name_refuses_a_missing_or_other_backbone(subset_run, tmp_path):
    _, lmap, _ = _official_like_file(subset_run, tmp_path)
    opts = ["MODEL.WEIGHTS_LABEL_MAP", str(lmap), "MODEL.WEIGHTS_CLASS_MAP", "by_name"]
    cfg = tiny_cfg(tmp_path, opts)
    model = build_model(cfg)
    backbone = [k for k in model.state_dict() if k.startswith("backbone.") and k.endswith("weight")]
    path, _, _ = _official_like_file(subset_run, tmp_path, drop=backbone[:1])
    with pytest.raises(CheckpointMismatchError, match=r"missing from the file: \['" + backbone[0]):
        ACARCheckpointer.from_config(model, cfg, purpose="train").load(str(path))
    # another backbone (stem width 16): refused, not loaded "where it fits"
    path, _, _ = _official_like_file(subset_run, tmp_path)
    other = build_model(tiny_cfg(tmp_path, opts + ["MODEL.SLOWFAST.WIDTH", "16"]))
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        ACARCheckpointer.from_config(other, cfg, purpose="train").load(str(path))
