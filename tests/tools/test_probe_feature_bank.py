"""
tools/benchmarks/probe_feature_bank.py: the pieces that say where the long-range evidence goes.
The probe separates separable vectors (AUC 1) and not shuffled labels (about 0.5); the own-entry
lookup finds the person's row in a hand-made bank and its slot in the reader's window; the
recomputed attention is the one BankAttentionBlock uses; the targets follow the world's rule.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from acar_d2.data.feature_bank import FeatureBank, write_video_bank
from acar_d2.modeling.roi_heads.bank_attention import BankAttentionBlock
from acar_d2.modeling.roi_heads.layout import ClipActorLayout

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def probe():
    spec = importlib.util.spec_from_file_location(
        "probe_feature_bank", REPO / "tools/benchmarks/probe_feature_bank.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_auc_known_answers(probe):
    assert probe.auc([3, 2, 1, 0], [1, 1, 0, 0]) == 1.0
    assert probe.auc([0, 1, 2, 3], [1, 1, 0, 0]) == 0.0
    assert probe.auc([1, 1, 1, 1], [1, 0, 1, 0]) == 0.5
    assert probe.auc([2, 0, 1], [1, 0, 1]) == 1.0 and probe.auc([1, 0], [1, 1]) != probe.auc([1, 0], [1, 1])


def test_probe_separates_separable_vectors_and_not_shuffled_labels(probe):
    rng = np.random.default_rng(0)
    d = 50
    direction = rng.standard_normal(d)

    def sample(n, flip_labels=False):
        y = rng.integers(0, 2, n)
        x = rng.standard_normal((n, d)) + np.outer(2 * y - 1, direction)
        return x, (rng.permutation(y) if flip_labels else y)

    xtr, ytr = sample(200)
    xva, yva = sample(200)
    assert probe.probe_auc(xtr, ytr, xva, yva) == 1.0
    xtr_s, ytr_s = sample(200, flip_labels=True)
    assert abs(probe.probe_auc(xtr_s, ytr_s, xva, yva) - 0.5) < 0.15


def _hand_bank(tmp_path):
    """Seconds 1..4 of one video; second 1 has 3 persons, the others 2 (boxes in px)."""
    rng = np.random.default_rng(1)
    boxes = {1: [[10, 10, 20, 40], [60, 10, 70, 40], [100, 50, 112, 80]],
             2: [[100, 50, 112, 80], [10, 10, 20, 40]], 3: [[61, 11, 71, 41], [100, 50, 112, 80]],
             4: [[10, 10, 20, 40], [100, 50, 112, 80]]}
    entries = [{"timestamp": t, "features": rng.standard_normal((len(b), 2, 3, 3)).astype(np.float16),
                "valid_sizes": np.tile([3, 2], (len(b), 1)), "boxes": np.asarray(b, float),
                "scores": np.ones(len(b))} for t, b in boxes.items()]
    write_video_bank(str(tmp_path / "videos"), "vid", entries)
    (tmp_path / "bank_record.json").write_text(
        '{"format": 1, "kind": "acfb", "entry_shape": [2, 3, 3], "compat": {}, "extractor": {}}')
    return entries


def test_own_entry_lookup_and_window_slot(probe, tmp_path):
    entries = _hand_bank(tmp_path)
    idx = probe.BankIndex(str(tmp_path), "vid")
    # the person at [100, 50, 112, 80] is row 2 of second 1 (global row 2), row 0 of second 2
    assert idx.own_row(1, [100, 50, 112, 80]) == 2
    assert idx.own_row(2, [101, 50, 112, 81]) == 3
    assert idx.own_row(3, [60, 10, 70, 40]) == 5  # IoU 0.68 with the shifted box
    assert idx.own_row(3, [10, 10, 20, 40]) is None  # nobody there at second 3
    assert idx.own_row(9, [10, 10, 20, 40]) is None  # no such second
    # the entry is the stored one, zero outside its valid cells (3 x 2)
    e = idx.entry(2)
    assert np.array_equal(e[:, :, :2], entries[0]["features"][2, :, :, :2].astype(np.float32))
    assert not e[:, :, 2].any()
    # the same entry sits at window_slot of the reader's window, for every key time
    bank = FeatureBank(str(tmp_path))
    for t_key in (2, 3, 4):
        w = bank.window("vid", t_key, 7)
        slot = probe.window_slot(w["times"], t_key, 1, 2 - idx.rows_at(1).start)
        assert np.array_equal(w["features"][slot].numpy(), entries[0]["features"][2]), t_key
    with pytest.raises(ValueError, match="second 1 has 3 entries"):
        probe.window_slot(bank.window("vid", 2, 5)["times"], 2, 1, 3)


def test_recorded_attention_is_the_blocks(probe):
    torch.manual_seed(0)
    block = BankAttentionBlock(4).eval()
    layout = ClipActorLayout([2, 1], torch.device("cpu"))
    x = torch.randn(3, 4, 3, 3)
    bank = torch.randn(2, 5, 4, 3, 3)
    bank_mask = torch.ones(2, 5, 1, 3, 3)
    bank_mask[1, 3:] = 0  # clip 1 has 3 entries
    bank = bank * bank_mask
    head = torch.nn.Module()
    head.bank_blocks = torch.nn.ModuleList([block])
    mask = torch.ones(3, 1, 3, 3)
    with probe.BankAttentionRecorder(head) as rec:
        block(x, layout, mask, bank, bank_mask)
    attn = rec.records[0]["attn"]
    assert attn.shape == (3, 5, 3, 3)
    assert torch.allclose(attn.sum(1), torch.ones(3, 3, 3), atol=1e-6)
    assert attn[2, 3:].abs().max() == 0  # empty slots get nothing
    # the recorded weights are the ones the block aggregates its values with
    v = (block.conv_v(bank.flatten(0, 1)) * bank_mask.flatten(0, 1)).view(2, 5, 4, 3, 3)
    expect = torch.einsum("rmyx,rmcyx->rcyx", attn, v[layout.clip_index])
    assert torch.allclose(block.attend(x, layout, bank, bank_mask), expect, atol=1e-5)
    assert not block._forward_hooks  # removed on exit
    w = probe.cell_mean(attn, mask)
    assert torch.allclose(w.sum(1), torch.ones(3), atol=1e-6)


def test_targets_follow_the_world(probe, tmp_path):
    from acar_d2.data.synthetic import write_world

    world = write_world(str(tmp_path / "w"), num_videos=15, seed=0, write_videos=False, long_range=True)
    for split in ("train", "val"):
        targets = probe.parting_targets(world, split)
        assert targets and all(tg["t"] >= 3 for tg in targets)
        for tg in targets:
            actor = next(a for a in world["scenes"][tg["video"]][str(tg["t"])]["actors"]
                         if a["person_id"] == tg["person_id"])
            assert tg["label"] == int("left_behind" in actor["labels"])
            assert actor["labels"] == (["stand", "left_behind"] if tg["label"] else ["stand"])
            if tg["label"]:
                assert tg["box1"] == tg["box"]  # a stayer stands still: same box at t = 1
            if not tg["label"]:  # nobody else in a negative's cell (half of the frame, same floor)
                scene = world["scenes"][tg["video"]][str(tg["t"])]
                cx = (tg["box"][0] + tg["box"][2]) / 2
                assert not [o for o in scene["actors"] if o["person_id"] != tg["person_id"]
                            and (o["box"][0] + o["box"][2]) // 160 == cx // 80
                            and abs(o["box"][3] - tg["box"][3]) < 12]
    train = probe.parting_targets(world, "train")
    assert 0 < sum(tg["label"] for tg in train) < len(train)
    # the stayer talked at t = 1: it is no negative at any time
    stayers = {(tg["video"], tg["person_id"]) for tg in probe.parting_targets(world, "train") if tg["label"]}
    negatives = {(tg["video"], tg["person_id"]) for tg in probe.parting_targets(world, "train") if not tg["label"]}
    assert stayers and negatives and not stayers & negatives


def test_read_out_recorder_on_a_bank_head(probe):
    from acar_d2.modeling.roi_heads import ACFBROIHeads
    from tests.modeling.test_roi_heads import COMMON, IMAGE, SMALL, make_boxes, make_features

    torch.manual_seed(0)
    head = ACFBROIHeads(**COMMON, **SMALL, hr2o_depth=0, bank_layers=2, bank_dropout=0.0).eval()
    feats, boxes = make_features(2), make_boxes([2, 3])
    g = torch.Generator().manual_seed(0)
    banks = [{"features": torch.rand(m, 8, 3, 3, generator=g), "valid_sizes": torch.tensor([[3, 3]] * m),
              "times": torch.zeros(m, dtype=torch.long)} for m in (4, 2)]
    attn = probe.BankAttentionRecorder(head)
    with probe.ReadOutRecorder(head) as rec, attn:
        logits, _ = head(feats, boxes, [IMAGE] * 2, IMAGE, feature_bank=banks)
    seen = rec.seen
    assert seen["classifier_input"].shape == (5, 16)
    assert torch.allclose(head.fc2(seen["classifier_input"]), logits, atol=1e-6)
    # block 1's output pooled is the classifier input's relation half (no HR2O after the blocks)
    assert torch.allclose(seen["block1_output"], seen["classifier_input"][:, 8:], atol=1e-6)
    # the recorded values are the attention-weighted bank values, pooled over the actor's cells
    mask = attn.records[0]["mask"]
    assert seen["block0_values"].shape == (5, 8) and mask.shape == (5, 1, 3, 3)
    assert not head.fc2._forward_pre_hooks and not head.bank_blocks[0]._forward_hooks
