"""
VideoActionPredictor with a feature-bank model (ACFB) on a raw video: pass 1 writes the video's
bank with the extraction model (entries equal to what the extractor computes on the same key
frames), pass 2 predicts with the windows read from it (equal to ActionPredictor with the same
bank); a second call reuses the bank; a live source, a missing extractor and a bank folder of
another extractor are refused.
"""
import dataclasses
import json

import numpy as np
import pytest
import torch

from acar_d2.data.bank_record import RECORD_FILE, BankRecord
from acar_d2.data.feature_bank import FeatureBank
from acar_d2.engine import ActionPredictor, VideoActionPredictor, setup_cfg
from acar_d2.engine.bank_extraction import BankEntryExtractor, extractor_cfg_from_record
from acar_d2.engine import bank_extraction
from demo.predictor import video_keyframe_dicts
from tests.utils.demo_helpers import BOXES_CONFIG, BOXES_OPTS, REPO, saved_model, write_test_video
from tests.utils.test_video_predictor import BOXES, ListSource, requests_of

ACFB_CONFIG = str(REPO / "configs" / "Synthetic" / "acfb_SLOWFAST_R18_1.5k_aca_world.yaml")
ACFB_OPTS = BOXES_OPTS + ["MODEL.FEATURE_BANK.WINDOW_SIZE", "3",
                          "MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH", "0.85"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bankmodels")
    ex_opts = BOXES_OPTS + ["MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH", "0.85"]
    (folder / "ex").mkdir()
    (folder / "bank").mkdir()
    ex_w = saved_model(BOXES_CONFIG, ex_opts, folder / "ex")
    bank_w = saved_model(ACFB_CONFIG, ACFB_OPTS, folder / "bank")
    ex_cfg = setup_cfg(BOXES_CONFIG, ex_opts + ["MODEL.WEIGHTS", ex_w])
    bank_cfg = setup_cfg(ACFB_CONFIG, ACFB_OPTS + ["MODEL.WEIGHTS", bank_w, "MODEL.FEATURE_BANK.DIR", ""])
    video = folder / "v.mp4"
    write_test_video(str(video), n=40, fps=8)  # 5 s: key frames 0..4
    return ex_cfg, bank_cfg, str(video)


def _requests(path):
    boxes = dict(BOXES)
    boxes[3], boxes[4] = BOXES[1], BOXES[2]
    dicts = video_keyframe_dicts(path, "v", {k: np.array(v) for k, v in boxes.items()})
    return dicts, requests_of(dicts)


def test_two_passes_equal_the_extractor_and_the_bank_mapper(models, tmp_path, monkeypatch):
    ex_cfg, bank_cfg, path = models
    dicts, requests = _requests(path)
    bank_dir = tmp_path / "bank"
    video = VideoActionPredictor(bank_cfg, track=False, bank_extractor=ex_cfg, bank_dir=str(bank_dir))
    out = list(video(path, requests, video_id="v"))
    assert [kf.timestamp for kf in out] == [0, 1, 2, 3, 4]

    # pass 1: one entry per box above the 0.85 threshold, equal to the extractor's own
    bank = FeatureBank(str(bank_dir), bank_cfg)
    vb = bank.video("v")
    assert sorted(vb.row_of) == [0, 1, 2, 3, 4]
    assert [b - a for a, b in (vb.row_of[t] for t in range(5))] == [1, 1, 1, 1, 1]  # 0.8 box dropped
    clip_cfg = ex_cfg.clone()
    clip_cfg.defrost()
    clip_cfg.INPUT.CLIP.SOURCE = "video"
    clip = ActionPredictor(clip_cfg)
    extractor = BankEntryExtractor(clip_cfg, "acfb", model=clip.model)
    for d in dicts:
        own = extractor(clip.mapper(d), d["timestamp"])
        a, b = vb.row_of[d["timestamp"]]
        assert own["features"].shape[0] == b - a
        np.testing.assert_allclose(np.asarray(vb.features[a:b], np.float32),
                                   own["features"].astype(np.float16).astype(np.float32),
                                   rtol=2e-3, atol=2e-3)
    record = json.loads((bank_dir / RECORD_FILE).read_text())
    assert record["kind"] == "acfb" and record["datasets"] == ["video:v"]

    # pass 2: the same scores as the dataset-dict predictor reading this bank
    ref_cfg = bank_cfg.clone()
    ref_cfg.defrost()
    ref_cfg.INPUT.CLIP.SOURCE = "video"
    ref_cfg.MODEL.FEATURE_BANK.DIR = str(bank_dir)
    ref = ActionPredictor(ref_cfg)
    for kf, d in zip(out, dicts):
        r = ref(d)
        assert torch.allclose(kf.instances.action_scores, r.action_scores, atol=1e-5)
    # ... and the bank matters: with an empty memory the scores differ
    x = ref.mapper(dicts[2])
    fb = x["feature_bank"]
    empty = dict(x, feature_bank={k: v[:0] for k, v in fb.items()})
    with torch.no_grad():
        without = ref.model([empty])[0]["instances"].action_scores
    assert not torch.allclose(without, out[2].instances.action_scores, atol=1e-4)

    # run again: the bank is read back, pass 1 does not run
    before = (bank_dir / "videos" / "v.npy").stat().st_mtime_ns

    def no_second_pass(*a, **k):
        raise AssertionError("pass 1 ran again")
    monkeypatch.setattr(bank_extraction, "BankPassPredictor", no_second_pass)
    again = list(video(path, requests, video_id="v"))
    assert (bank_dir / "videos" / "v.npy").stat().st_mtime_ns == before
    assert all(torch.equal(a.instances.action_scores, b.instances.action_scores)
               for a, b in zip(again, out))


def test_refusals(models, tmp_path):
    ex_cfg, bank_cfg, path = models
    with pytest.raises(ValueError, match="reads a feature bank: give the model that writes it"):
        VideoActionPredictor(bank_cfg)
    video = VideoActionPredictor(bank_cfg, bank_extractor=ex_cfg, bank_dir=str(tmp_path / "b"))
    frames = [np.zeros((120, 160, 3), np.uint8)] * 20
    with pytest.raises(ValueError, match="live source cannot"):
        list(video(ListSource(frames)))
    # no boxes and no detector in the extraction model
    with pytest.raises(ValueError, match="no person detector"):
        list(video(path))
    # a bank folder written by another extractor is not overwritten
    other = BankRecord.of_extraction(ex_cfg, "acfb", entry_shape=(8, 2, 2))
    dataclasses.replace(other, extractor=dict(other.extractor, weights="other.pth",
                                              weights_sha256="0" * 64)).write(str(tmp_path / "b"))
    with pytest.raises(ValueError, match="does not fit this model: extractor.weights_sha256: bank "
                                         "'000000000000' \\(weights 'other.pth'\\)"):
        list(video(path, _requests(path)[1]))
    assert "other.pth" in (tmp_path / "b" / RECORD_FILE).read_text()
    # nobody above the threshold anywhere: an empty bank of the right entry shape, empty windows
    dicts, requests = _requests(path)
    for r in requests:
        r.proposals = dict(r.proposals, scores=np.full(len(r.proposals["scores"]), 0.5))
    empty_dir = tmp_path / "empty"
    video = VideoActionPredictor(bank_cfg, bank_extractor=ex_cfg, bank_dir=str(empty_dir))
    out = list(video(path, requests, video_id="v"))
    assert [len(kf.instances) for kf in out] == [0] * 5
    full_dir = tmp_path / "full"
    list(VideoActionPredictor(bank_cfg, bank_extractor=ex_cfg, bank_dir=str(full_dir))(
        path, _requests(path)[1], video_id="v"))
    shape = json.loads((full_dir / RECORD_FILE).read_text())["entry_shape"]
    assert shape[0] == 8 and json.loads((empty_dir / RECORD_FILE).read_text())["entry_shape"] == shape
    assert len(FeatureBank(str(empty_dir), bank_cfg).window("v", 2, 3)["features"]) == 0


def test_extractor_from_the_training_bank_record(models, tmp_path):
    ex_cfg, bank_cfg, path = models
    root = tmp_path / "train_bank"
    BankRecord.of_extraction(ex_cfg, "acfb", ["x"], (8, 2, 2)).write(str(root))
    cfg = extractor_cfg_from_record(str(root), device="cpu")
    assert cfg.MODEL.WEIGHTS == ex_cfg.MODEL.WEIGHTS and cfg.MODEL.ROI_HEADS.NAME == "ACARROIHeads"
    assert cfg.INPUT.CLIP.NUM_FRAMES == 4
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not the extractor")
    with pytest.raises(ValueError, match="does not fit this model: extractor.weights_sha256"):
        extractor_cfg_from_record(str(root), weights=str(bad))
    with pytest.raises(FileNotFoundError, match="are not there"):
        extractor_cfg_from_record(str(root), weights=str(tmp_path / "gone.pth"))


def test_demo_cli_with_a_bank_model(models, tmp_path):
    """tools/demo.py: the extractor named on the command line, the bank kept in --bank-dir; the
    JSON scores equal the predictor's; missing extractor weights are a clear exit message."""
    from tests.utils.test_demo_cli import boxes_csv, run_demo

    ex_cfg, bank_cfg, path = models
    boxes_csv(tmp_path / "boxes.csv", video_id="v")
    (tmp_path / "extractor.yaml").write_text(ex_cfg.dump())  # as a training run's config.yaml
    common = ["--config-file", ACFB_CONFIG, "--input", path, "--boxes", tmp_path / "boxes.csv",
              "--bank-extractor-config", tmp_path / "extractor.yaml"]
    opts = [*ACFB_OPTS, "MODEL.WEIGHTS", bank_cfg.MODEL.WEIGHTS]
    code, err = run_demo(*common, "--bank-extractor-weights", tmp_path / "gone.pth",
                         "--output", tmp_path / "x.mp4", *opts)
    assert code != 0 and "gone.pth" in str(code) + err
    code, err = run_demo(*common, "--bank-extractor-weights", ex_cfg.MODEL.WEIGHTS, "--bank-dir",
                         tmp_path / "bank", "--output", tmp_path / "out.mp4", "--json",
                         tmp_path / "out.json", *opts)
    assert code == 0, err
    assert sorted(FeatureBank(str(tmp_path / "bank"), bank_cfg).video("v").row_of) == [0, 1, 2]
    doc = json.loads((tmp_path / "out.json").read_text())
    assert [kf["timestamp"] for kf in doc["key_frames"]] == [0, 1, 2]


def test_place_encoding_model_on_a_raw_video(models, tmp_path):
    # MODEL.FEATURE_BANK.PLACE_ENCODING reads the window's boxes: the video predictor must give the
    # bank window the key frame size as the dataset mapper does (same scores on the same bank)
    ex_cfg, _, path = models
    opts = ACFB_OPTS + ["MODEL.FEATURE_BANK.PLACE_ENCODING", "box_centre"]
    (tmp_path / "place").mkdir()
    weights = saved_model(ACFB_CONFIG, opts, tmp_path / "place")
    cfg = setup_cfg(ACFB_CONFIG, opts + ["MODEL.WEIGHTS", weights, "MODEL.FEATURE_BANK.DIR", ""])
    dicts, requests = _requests(path)
    bank_dir = tmp_path / "bank"
    video = VideoActionPredictor(cfg, track=False, bank_extractor=ex_cfg, bank_dir=str(bank_dir))
    out = list(video(path, requests, video_id="v"))
    ref_cfg = cfg.clone()
    ref_cfg.defrost()
    ref_cfg.INPUT.CLIP.SOURCE = "video"
    ref_cfg.MODEL.FEATURE_BANK.DIR = str(bank_dir)
    ref = ActionPredictor(ref_cfg)
    assert "boxes" in ref.mapper(dicts[2])["feature_bank"]
    for kf, d in zip(out, dicts):
        assert torch.allclose(kf.instances.action_scores, ref(d).action_scores, atol=1e-5)
