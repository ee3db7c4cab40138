"""
Feature banks on disk: window rules (current time included or not, padding before the start /
after the end, empty windows, nearest-first truncation, flip), bad input (missing video file,
bank of another kind / settings / model), the mapper wrapper, and tools/extract_feature_bank.py
end to end on a 2-video synthetic world (entries equal the model's own, resume gives the same
bytes, another model's output folder is refused).
"""
import hashlib
import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from detectron2.data import DatasetCatalog, MetadataCatalog

from acar_d2.data.bank_record import RECORD_FILE, BankRecord, bank_compat_keys
from acar_d2.data.clip_mapper import ClipDatasetMapper
from acar_d2.data.feature_bank import (FeatureBank, FeatureBankDatasetMapper, window_times,
                                       write_video_bank)
from acar_d2.engine import setup_cfg

REPO = Path(__file__).resolve().parents[2]
SHAPE = (2, 3, 3)


def _entries(counts, t0=1, seed=0):
    rng = np.random.default_rng(seed)
    return [{"timestamp": t0 + i, "features": rng.standard_normal((n, *SHAPE)).astype(np.float32),
             "valid_sizes": np.tile([3, 2], (n, 1)), "boxes": rng.uniform(0, 50, (n, 4)),
             "scores": np.ones(n)} for i, n in enumerate(counts)]


def _cfg(head="acfb", opts=()):
    """The synthetic world's ACFB (or LFB) config: MODEL.FEATURE_BANK.KIND is the head's."""
    return setup_cfg(str(REPO / f"configs/Synthetic/{head}_SLOWFAST_R18_1.5k_aca_world.yaml"),
                     ["MODEL.DEVICE", "cpu", *opts])


def _bank(tmp_path, counts=(2, 0, 1, 3, 1), cfg=None):
    root = tmp_path / "bank"
    entries = _entries(counts)
    write_video_bank(str(root / "videos"), "vid", entries)
    cfg = cfg or _cfg()
    record = {"format": 1, "kind": "acfb", "entry_shape": list(SHAPE),
              "compat": json.loads(json.dumps(bank_compat_keys(cfg, "acfb"))),
              "extractor": {"weights": "w.pth", "weights_sha256": "ab" * 32}}
    (root / RECORD_FILE).write_text(json.dumps(record))
    return root, entries


def test_window_times_known_answers():
    assert window_times(10, 19) == list(range(1, 20))  # ACFB: 19 clips, t-9 .. t+9
    assert window_times(10, 19, include_current=False) == [t for t in range(1, 20) if t != 10]
    lfb = window_times(100, 60)
    assert (lfb[0], lfb[-1], len(lfb)) == (70, 129, 60)  # LFB: 60 s, t-30 .. t+29
    assert window_times(5, 3, stride=2) == [3, 5, 7]


def test_window_contents_current_and_padding(tmp_path):
    root, entries = _bank(tmp_path)  # times 1..5 with 2, 0, 1, 3, 1 actors
    bank = FeatureBank(str(root), _cfg())
    w = bank.window("vid", 3, 5)  # times 1..5 -> everything, time-ordered
    assert w["times"].tolist() == [-2, -2, 0, 1, 1, 1, 2]
    expect = np.concatenate([e["features"] for e in entries]).astype(np.float16)
    assert w["features"].dtype == torch.float16 and np.array_equal(w["features"].numpy(), expect)
    assert w["valid_sizes"].tolist() == [[3, 2]] * 7
    # the current time's entries are in the window (ACAR / LFB), or left out on request
    assert 0 in w["times"].tolist()
    w = bank.window("vid", 3, 5, include_current=False)
    assert w["times"].tolist() == [-2, -2, 1, 1, 1, 2]
    # before the start: times -1, 0 do not exist -> no entry (padding = no slot), rest kept
    w = bank.window("vid", 1, 5)
    assert w["times"].tolist() == [0, 0, 2]
    # after the end and far outside: empty memory with the entry shape
    w = bank.window("vid", 40, 5)
    assert tuple(w["features"].shape) == (0, *SHAPE) and w["times"].numel() == 0
    # a window whose times have no actor (time 2 only)
    assert bank.window("vid", 2, 1)["features"].shape[0] == 0
    # at most 4 entries: the nearest times first (t=3: 0 (1), then +1 (3)); ties to the earlier
    w = bank.window("vid", 3, 5, max_entries=4)
    assert w["times"].tolist() == [0, 1, 1, 1]


def test_flip_mirrors_valid_region_only(tmp_path):
    root, entries = _bank(tmp_path)
    bank = FeatureBank(str(root), _cfg())
    a = bank.window("vid", 1, 1)["features"]
    b = bank.window("vid", 1, 1, flip=True)["features"]
    assert torch.equal(b[..., :2], a[..., :2].flip(-1))  # valid width 2 of 3
    assert torch.equal(b[..., 2:], a[..., 2:])


def test_bad_inputs(tmp_path):
    root, _ = _bank(tmp_path)
    bank = FeatureBank(str(root), _cfg())
    with pytest.raises(FileNotFoundError, match="feature bank of video 'other' not found.*other.json"):
        bank.window("other", 3, 5)
    with pytest.raises(FileNotFoundError, match="is not a feature bank"):
        FeatureBank(str(tmp_path / "nowhere"), _cfg())
    record = BankRecord.load(str(root))
    where = re.escape(f"{root}/{RECORD_FILE} does not fit this model: ")
    with pytest.raises(ValueError, match=f"^{where}kind: bank 'acfb' vs this model 'lfb'; "):
        record.check_readable_by(_cfg("lfb"), str(root))
    with pytest.raises(ValueError, match="settings MODEL.ACTION_HEAD.HIDDEN_DIM: bank 32 vs this "
                                         "model 16;"):
        record.check_readable_by(_cfg(opts=["MODEL.ACTION_HEAD.HIDDEN_DIM", "16"]), str(root))
    with pytest.raises(ValueError, match="extractor.weights_sha256: bank 'abababababab' "
                                         r"\(weights 'w.pth'\) vs this model 'cdcdcdcdcdcd'"):
        record.check_readable_by(_cfg(opts=["MODEL.FEATURE_BANK.EXTRACTOR_SHA256", "cd" * 32]),
                                 str(root))
    record.check_readable_by(_cfg(opts=["MODEL.FEATURE_BANK.EXTRACTOR_SHA256", "ab" * 32]), str(root))
    # the reader applies it when it opens the folder
    with pytest.raises(ValueError, match=f"^{where}kind: bank 'acfb' vs this model 'lfb'"):
        FeatureBank(str(root), _cfg("lfb"))
    # a truncated .npy (killed while copying by hand) is named
    np.save(root / "videos" / "vid.npy", np.zeros((2, *SHAPE), np.float16))
    with pytest.raises(ValueError, match="2 rows but its index"):
        FeatureBank(str(root), _cfg()).window("vid", 1, 1)


# ---------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    from acar_d2.data.datasets.aca_world import register_aca_world
    from acar_d2.data.synthetic import write_world

    world = tmp_path_factory.mktemp("fbworld") / "aca_world"
    write_world(str(world), num_videos=2, seed=3, write_videos=False)
    for s in ("train", "val"):
        if f"test_fb_{s}" in DatasetCatalog.list():
            DatasetCatalog.remove(f"test_fb_{s}")
            MetadataCatalog.remove(f"test_fb_{s}")
    register_aca_world(str(world), prefix="test_fb")
    return world


def _tool():
    spec = importlib.util.spec_from_file_location("extract_feature_bank",
                                                  REPO / "tools" / "extract_feature_bank.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _weights(path, seed):
    from detectron2.modeling import build_model

    torch.manual_seed(seed)
    cfg = setup_cfg(str(REPO / "configs/Synthetic/acar_SLOWFAST_R18_1.5k_aca_world.yaml"),
                    ["MODEL.DEVICE", "cpu"])
    torch.save({"model": build_model(cfg).state_dict()}, path)
    return str(path)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir())}


def test_extract_resume_and_read(tiny_world, tmp_path, capsys):
    tool = _tool()
    w0 = _weights(tmp_path / "w0.pth", 0)
    out = tmp_path / "bank"
    config = str(REPO / "configs/Synthetic/acar_SLOWFAST_R18_1.5k_aca_world.yaml")
    opts = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", w0,
            "MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH", "0.85"]
    argv = ["--config-file", config, "--datasets", "test_fb_train", "test_fb_val",
            "--kind", "acfb", "--output", str(out), *opts]
    res = tool.main(tool.argument_parser().parse_args(argv))
    assert res["written"] == 2
    printed = capsys.readouterr().out
    assert "2 videos (0 done), 18 key times" in printed and "KiB" in printed
    full = _digest(out / "videos")
    assert sorted(full) == ["acaw_0000.json", "acaw_0000.npy", "acaw_0001.json", "acaw_0001.npy"]
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["kind"] == "acfb" and record["entry_shape"] == [32, 5, 5]  # 170 px padded clip -> 11 -> 9 -> 5
    assert record["extractor"]["weights_sha256"] == hashlib.sha256(Path(w0).read_bytes()).hexdigest()

    # a killed run: one video finished, the other left a temporary file -> same bytes after resume
    os.remove(out / "videos" / "acaw_0001.json")
    (out / "videos" / "acaw_0001.npy.tmp").write_bytes(b"partial")
    res = tool.main(tool.argument_parser().parse_args(argv))
    assert res["written"] == 1 and "(1 done)" in capsys.readouterr().out
    assert _digest(out / "videos") == full

    # the entries are what the extraction model computes for that key frame
    ex = tool.Extractor(setup_cfg(config, opts), "acfb", "test_fb_val")
    d = next(d for d in DatasetCatalog.get("test_fb_val") if d["timestamp"] == 4)
    own = ex(d)
    bank = FeatureBank(str(out), None)
    w = bank.window("acaw_0001", 4, 1)
    assert len(own["features"]) > 0 and w["features"].shape == own["features"].shape
    assert np.allclose(w["features"].float().numpy(), own["features"].astype(np.float16), atol=0)

    # another model's extraction into the same folder is refused, the files stay
    w1 = _weights(tmp_path / "w1.pth", 1)
    argv2 = argv[:argv.index(w0)] + [w1] + argv[argv.index(w0) + 1:]
    with pytest.raises(ValueError, match="does not fit this model: extractor.weights_sha256"):
        tool.main(tool.argument_parser().parse_args(argv2))
    assert _digest(out / "videos") == full

    # the mapper wrapper adds the window to ClipDatasetMapper's output
    cfg = setup_cfg(str(REPO / "configs/Synthetic/acfb_SLOWFAST_R18_1.5k_aca_world.yaml"),
                    ["MODEL.DEVICE", "cpu", "MODEL.FEATURE_BANK.DIR", str(out),
                     "MODEL.FEATURE_BANK.WINDOW_SIZE", "3",
                     "MODEL.FEATURE_BANK.EXTRACTOR_SHA256", record["extractor"]["weights_sha256"],
                     "DATASETS.TEST", "('test_fb_val',)"])
    mapper = FeatureBankDatasetMapper(cfg, False, dataset_name="test_fb_val")
    x = mapper(d)
    plain = ClipDatasetMapper(cfg, False, dataset_name="test_fb_val")(d)
    assert torch.equal(x["clip"], plain["clip"])
    wb = bank.window("acaw_0001", 4, 3)
    assert torch.equal(x["feature_bank"]["features"], wb["features"])
    assert sorted(set(x["feature_bank"]["times"].tolist())) <= [-1, 0, 1]
    # a model reading the bank with another extractor hash is refused when the mapper is built
    bad = cfg.clone()
    bad.defrost()
    bad.MODEL.FEATURE_BANK.EXTRACTOR_SHA256 = "0" * 64
    with pytest.raises(ValueError, match="does not fit this model: extractor.weights_sha256"):
        FeatureBankDatasetMapper(bad, False, dataset_name="test_fb_val")
    # and the bank model runs on the mapper output
    from detectron2.modeling import build_model

    model = build_model(cfg).eval()
    with torch.no_grad():
        (feats,) = [model.backbone(x["clip"][None])]
        props = x["proposals"][x["proposals"].scores >= 0.85]
        logits, _ = model.roi_heads(feats, [props.proposal_boxes], [x["valid_size"]],
                                    tuple(x["clip"].shape[-2:]), feature_bank=[x["feature_bank"]])
    assert logits.shape == (len(props), 10) and torch.isfinite(logits).all()

    # through the loaders and ACARNet: each input's window reaches the head
    from acar_d2.data.build import build_clip_test_loader, build_clip_train_loader

    tcfg = cfg.clone()
    tcfg.defrost()
    tcfg.DATASETS.TRAIN = ("test_fb_train",)
    tcfg.SOLVER.IMS_PER_BATCH = 2
    tcfg.DATALOADER.NUM_WORKERS = 0
    batch = next(iter(build_clip_train_loader(tcfg, seed=0)))
    assert all("feature_bank" in b for b in batch)
    model.train()
    loss = model(batch)["loss_action"]
    loss.backward()
    assert torch.isfinite(loss)
    grad = model.roi_heads.bank_blocks[0].conv_k.weight.grad
    assert grad is not None and grad.abs().sum() > 0  # the bank is used in training
    with pytest.raises(ValueError, match="needs feature_bank in training"):
        model([{k: v for k, v in batch[0].items() if k != "feature_bank"}])
    with pytest.raises(KeyError, match="has no 'feature_bank' while others"):
        model([batch[0], {k: v for k, v in batch[1].items() if k != "feature_bank"}])
    model.eval()
    (x,) = next(iter(build_clip_test_loader(tcfg, "test_fb_val")))
    with torch.no_grad():
        with_bank = model([x])[0]["instances"].action_logits
        empty = dict(x, feature_bank=dict(x["feature_bank"], features=x["feature_bank"]["features"][:0],
                                          valid_sizes=x["feature_bank"]["valid_sizes"][:0]))
        without = model([empty])[0]["instances"].action_logits
    assert with_bank.shape == without.shape and not torch.allclose(with_bank, without)


def _extract_rank(world: str, argv: list) -> None:
    """One process of a launched extraction (a spawned process has a fresh dataset catalog)."""
    from acar_d2.data.datasets.aca_world import register_aca_world

    if "test_fb_train" not in DatasetCatalog.list():
        register_aca_world(world, prefix="test_fb")
    tool = _tool()
    tool.main(tool.argument_parser().parse_args(argv))


def test_extract_two_processes_writes_the_same_bank(tiny_world, tmp_path):
    """detectron2 launch, 2 CPU processes (gloo): videos dealt to the ranks, the same files as
    one process."""
    from detectron2.engine import launch

    tool = _tool()
    w0 = _weights(tmp_path / "w0.pth", 0)
    config = str(REPO / "configs/Synthetic/acar_SLOWFAST_R18_1.5k_aca_world.yaml")

    def argv(out):
        return ["--config-file", config, "--datasets", "test_fb_train", "test_fb_val", "--kind",
                "lfb", "--output", str(out), "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", w0]
    tool.main(tool.argument_parser().parse_args(argv(tmp_path / "one")))
    launch(_extract_rank, 2, dist_url="auto", args=(str(tiny_world), argv(tmp_path / "two")))
    one, two = _digest(tmp_path / "one" / "videos"), _digest(tmp_path / "two" / "videos")
    assert len(one) == 4 and one == two
    assert ((tmp_path / "one" / RECORD_FILE).read_text() ==
            (tmp_path / "two" / RECORD_FILE).read_text())


def test_training_mapper_flips_bank_with_clip(tiny_world, tmp_path):
    root = tmp_path / "bank"
    cfg = _cfg(opts=["MODEL.FEATURE_BANK.DIR", str(root), "MODEL.FEATURE_BANK.WINDOW_SIZE", "1",
                     "DATASETS.TRAIN", "('test_fb_train',)", "INPUT.CLIP.FLIP_PROB", "1.0"])
    d = DatasetCatalog.get("test_fb_train")[0]
    rng = np.random.default_rng(0)
    write_video_bank(str(root / "videos"), d["video_id"], [
        {"timestamp": d["timestamp"], "features": rng.standard_normal((2, *SHAPE)),
         "valid_sizes": [[3, 2], [3, 2]], "boxes": np.zeros((2, 4)), "scores": np.ones(2)}])
    record = {"format": 1, "kind": "acfb", "entry_shape": list(SHAPE),
              "compat": json.loads(json.dumps(bank_compat_keys(cfg, "acfb"))), "extractor": {}}
    (root / RECORD_FILE).write_text(json.dumps(record))
    flipped = FeatureBankDatasetMapper(cfg, True)(d)["feature_bank"]["features"]
    stored = FeatureBank(str(root)).window(d["video_id"], d["timestamp"], 1)["features"]
    assert torch.equal(flipped[..., :2], stored[..., :2].flip(-1))


def test_bank_record_from_an_older_config_is_the_same_extraction(tmp_path):
    """A bank written before a config key existed (its recorded config lacks the key) is resumable
    by the same model when the key sits at its default; not when it is set to something else,
    nor when the weights differ."""
    def record(cfg_text, weights="w.pth", sha="x"):
        return BankRecord(kind="acfb", entry_shape=(1,), extractor={
            "head": "ACARROIHeads", "weights": weights, "weights_sha256": sha, "config": cfg_text})

    new = setup_cfg(None, ["MODEL.DEVICE", "cpu"]).dump()
    old = "\n".join(line for line in new.splitlines() if "RES5_STRIDE" not in line) + "\n"
    assert old != new
    record(old).write(str(tmp_path))
    record(new).write(str(tmp_path))  # accepted: the added key is at its default
    assert BankRecord.load(str(tmp_path)).extractor["config"] == old  # not written over
    changed = setup_cfg(None, ["MODEL.DEVICE", "cpu", "MODEL.SLOWFAST.RES5_STRIDE", "1"]).dump()
    with pytest.raises(ValueError, match="extractor.config MODEL.SLOWFAST.RES5_STRIDE: bank "
                                         "\\(unset\\) vs this model 1;"):
        record(changed).write(str(tmp_path))
    with pytest.raises(ValueError, match="extractor.weights_sha256: bank 'x' \\(weights 'w.pth'\\) "
                                         "vs this model 'y'"):
        record(new, weights="other.pth", sha="y").write(str(tmp_path))
    record(new, weights="copy/w.pth").write(str(tmp_path))  # the same weights (sha) elsewhere
