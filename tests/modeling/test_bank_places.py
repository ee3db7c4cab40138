"""
The ACFB place encoding (``MODEL.FEATURE_BANK.PLACE_ENCODING``, docs/FEATURE_BANKS.md "Where the
long-range evidence goes"): a relation map carries no position of its actor, so two pixel-identical
actors at different places read the bank identically without it; with it each reads its own
entries. Also: the window's normalised (and flipped) entry boxes, and the clear errors.
"""
import numpy as np
import pytest
import torch

from detectron2.structures import Boxes

from acar_d2.data.feature_bank import FeatureBank, write_video_bank
from acar_d2.engine import setup_cfg
from acar_d2.modeling.roi_heads import ACFBROIHeads
from acar_d2.modeling.roi_heads.bank_attention import BankAttentionBlock, place_encoding
from acar_d2.modeling.roi_heads.layout import ClipActorLayout

from .test_roi_heads import COMMON, IMAGE, SMALL

# two actors: left and right half of the frame, normalised XYXY
LEFT, RIGHT = [0.10, 0.40, 0.20, 0.90], [0.70, 0.40, 0.80, 0.90]


def test_place_encoding_known_values():
    e = place_encoding(torch.tensor([[0.0, 0.0, 0.5, 1.0]]), num_freqs=2)  # centre (0.25, 0.5)
    angles = torch.tensor([0.25 * torch.pi, 0.25 * 2 * torch.pi, 0.5 * torch.pi, 0.5 * 2 * torch.pi])
    assert torch.allclose(e[0], torch.cat([angles.sin(), angles.cos()]), atol=1e-6)


def _two_identical_actors(place_dim):
    """One clip: two actors with the same map; a bank of two entries, one at each actor's place."""
    torch.manual_seed(0)
    block = BankAttentionBlock(32, dropout=0.0, place_dim=place_dim).eval()  # the world's width
    x = torch.rand(1, 32, 3, 3).expand(2, -1, -1, -1).contiguous()  # pixel-identical actors
    bank = (0.1 * torch.randn(1, 2, 32, 3, 3))  # two different entries, small content scores
    bank_mask = torch.ones(1, 2, 1, 3, 3)
    layout = ClipActorLayout([2], torch.device("cpu"))
    places = place_encoding(torch.tensor([LEFT, RIGHT]), 4)
    return block, x, layout, bank, bank_mask, places, places[None]


def test_identical_actors_at_different_places_read_different_entries():
    # the paper's block: identical maps -> identical attention -> identical outputs, whatever
    # the entries hold (the stayer cannot tell its own t = 1 entry from another actor's)
    block, x, layout, bank, bank_mask, _, _ = _two_identical_actors(0)
    out = block(x, layout, torch.ones(2, 1, 3, 3), bank, bank_mask)
    assert torch.allclose(out[0], out[1], atol=1e-6)
    # with the place term each actor reads the entry at its own place (from the first step on)
    block, x, layout, bank, bank_mask, place, bank_place = _two_identical_actors(16)
    attn = block.attention(x, layout, bank, bank_mask, place, bank_place)[0]  # (A=2, M=2, 3, 3)
    assert attn[0, 0].min() > 0.9 and attn[1, 1].min() > 0.9, attn.mean((-2, -1))
    out = block(x, layout, torch.ones(2, 1, 3, 3), bank, bank_mask, place, bank_place)
    assert (out[0] - out[1]).abs().max() > 1e-2
    # swapping the entries' places swaps what the actors read
    swapped = block(x, layout, torch.ones(2, 1, 3, 3), bank, bank_mask, place, bank_place.flip(1))
    assert torch.allclose(swapped[0], out[1], atol=1e-5) and torch.allclose(swapped[1], out[0], atol=1e-5)
    with pytest.raises(ValueError, match="place encodings"):
        block(x, layout, torch.ones(2, 1, 3, 3), bank, bank_mask)


def _uniform_features():
    # the same content everywhere: two boxes of one size anywhere get the same RoI feature
    return {"slow": torch.ones(1, 16, 2, 8, 8), "fast": torch.ones(1, 4, 8, 8, 8)}


def _head(place):
    torch.manual_seed(0)
    return ACFBROIHeads(**COMMON, **SMALL, hr2o_depth=0, bank_layers=2, bank_dropout=0.0,
                        place_encoding=place).eval()


def test_acfb_head_place_encoding():
    boxes = [Boxes(torch.tensor(LEFT + RIGHT).view(2, 4) * 128)]  # clip px of a 128 x 128 clip
    g = torch.Generator().manual_seed(0)
    window = {"features": torch.rand(2, 8, 3, 3, generator=g), "valid_sizes": torch.tensor([[3, 3]] * 2),
              "times": torch.tensor([-2, -2]), "boxes": torch.tensor([LEFT, RIGHT])}
    plain = _head("none")(_uniform_features(), boxes, [IMAGE], IMAGE, feature_bank=[window])[0]
    assert torch.allclose(plain[0], plain[1], atol=1e-6)  # no way to tell the two apart
    head = _head("box_centre")
    logits = head(_uniform_features(), boxes, [IMAGE], IMAGE, feature_bank=[window])[0]
    assert (logits[0] - logits[1]).abs().max() > 1e-3
    swapped = head(_uniform_features(), boxes, [IMAGE], IMAGE,
                   feature_bank=[dict(window, boxes=window["boxes"].flip(0))])[0]
    assert (swapped - logits).abs().max() > 1e-3  # where an entry was seen matters
    # an empty window needs no boxes; a window with entries does, normalised
    head(_uniform_features(), boxes, [IMAGE], IMAGE, feature_bank=[head.empty_bank()])
    no_boxes = {k: v for k, v in window.items() if k != "boxes"}
    with pytest.raises(ValueError, match="clip 0: its feature-bank window has no 'boxes'"):
        head(_uniform_features(), boxes, [IMAGE], IMAGE, feature_bank=[no_boxes])
    with pytest.raises(ValueError, match="normalised to"):
        head(_uniform_features(), boxes, [IMAGE], IMAGE, feature_bank=[dict(window, boxes=window["boxes"] * 160)])


def test_config_key_and_lfb_refusal():
    from pathlib import Path

    from detectron2.modeling import build_model

    repo = Path(__file__).resolve().parents[2]
    cfg = setup_cfg(str(repo / "configs/Synthetic/acfb_SLOWFAST_R18_1.5k_aca_world.yaml"),
                    ["MODEL.DEVICE", "cpu", "MODEL.FEATURE_BANK.PLACE_ENCODING", "box_centre"])
    head = build_model(cfg).roi_heads
    assert head.place_freqs == 4 and all(b.place_dim == 16 for b in head.bank_blocks)
    cfg = setup_cfg(str(repo / "configs/Synthetic/lfb_SLOWFAST_R18_1.5k_aca_world.yaml"),
                    ["MODEL.DEVICE", "cpu", "MODEL.FEATURE_BANK.PLACE_ENCODING", "box_centre"])
    with pytest.raises(ValueError, match="PLACE_ENCODING 'box_centre' is an ACFB option"):
        build_model(cfg)
    with pytest.raises(ValueError, match="place_encoding 'centre' not in"):
        _head("centre")


def test_window_boxes_normalised_and_flipped(tmp_path):
    rng = np.random.default_rng(0)
    write_video_bank(str(tmp_path / "videos"), "vid", [
        {"timestamp": t, "features": rng.standard_normal((1, 2, 3, 3)).astype(np.float16),
         "valid_sizes": np.array([[3, 3]]), "boxes": np.array([[16.0, 12.0, 48.0, 60.0 + t]]),
         "scores": np.ones(1)} for t in (1, 2)])
    (tmp_path / "bank_record.json").write_text(
        '{"format": 1, "kind": "acfb", "entry_shape": [2, 3, 3], "compat": {}, "extractor": {}}')
    bank = FeatureBank(str(tmp_path))
    assert "boxes" not in bank.window("vid", 1, 3)  # no frame size: no places
    w = bank.window("vid", 1, 3, frame_size=(120, 160))
    assert torch.allclose(w["boxes"], torch.tensor([[0.1, 0.1, 0.3, 61 / 120], [0.1, 0.1, 0.3, 62 / 120]]))
    w = bank.window("vid", 1, 3, flip=True, frame_size=(120, 160))
    assert torch.allclose(w["boxes"], torch.tensor([[0.7, 0.1, 0.9, 61 / 120], [0.7, 0.1, 0.9, 62 / 120]]))
