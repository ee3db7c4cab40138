"""ClipDatasetMapper: normalization parity, padding, flips/jitter, training ROIs, the loaders."""
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from acar_d2.data import ClipDatasetMapper
from acar_d2.structures import assign_training_rois, jitter_boxes
from acar_d2.engine import setup_cfg
from acar_d2.data.build import build_clip_test_loader, build_clip_train_loader
from acar_d2.data.datasets.ava import load_ava_instances, register_ava_instances
from tests.reference_utils import golden_case_dir

from . import ava_fixtures as fx

MEAN, STD = [0.45] * 3, [0.225] * 3
ACTION_IDS = [1, 12, 17, 79]


class _ArrayReader:
    """Serves frames from memory: (N, H, W, 3) uint8 video."""

    def __init__(self, video: np.ndarray):
        self.video = torch.from_numpy(video).permute(0, 3, 1, 2)

    def __call__(self, d, indices):
        return self.video[torch.as_tensor(indices)]


def _mapper(is_train, reader=None, **kw):
    args = dict(action_ids=ACTION_IDS, num_frames=4, sampling_rate=2, short_side=16,
                pixel_mean=MEAN, pixel_std=STD, reader=reader)
    args.update(kw)
    return ClipDatasetMapper(is_train, **args)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return fx.make_ava_world(tmp_path_factory.mktemp("mapper"))


@pytest.fixture(scope="module")
def dicts(world):
    ds = load_ava_instances(world["annotations"], world["label_map"], **fx.load_kwargs(world))
    return {(d["video_id"], d["timestamp"]): d for d in ds}


def test_normalization_parity_with_golden_clip():
    """Official ACAR-Net eval pipeline: (x/255 - 0.45)/0.225 of the golden uint8 frames."""
    inputs = torch.load(golden_case_dir() / "inputs.pt")
    frames = inputs["frames_uint8"][0].numpy()  # (32, 72, 100, 3)
    mapper = _mapper(False, _ArrayReader(frames), num_frames=32, sampling_rate=1, short_side=72,
                     pad_to_square=False)
    d = {"video_id": "g", "timestamp": 0, "key_frame_index": 16, "num_frames": 32,
         "height": 72, "width": 100, "annotations": [], "proposals": None}
    out = mapper(d)
    err = (out["clip"] - inputs["clips"][0]).abs().max().item()
    assert out["clip"].shape == (3, 32, 72, 100)
    assert err < 1e-6, err
    assert out["valid_size"] == (72, 100)


def test_test_mode_output_and_padding_bookkeeping(dicts):
    d = dicts[("vidA", 900)]  # 24x32 frames -> short side 16: 16 x int(16*32/24) = 16 x 21
    out = _mapper(False)(d)
    assert out["clip"].shape == (3, 4, 21, 21) and out["clip"].dtype == torch.float32
    assert out["valid_size"] == (16, 21)
    assert (out["height"], out["width"]) == (24, 32)
    assert (out["video_id"], out["timestamp"]) == ("vidA", 900)
    assert "instances" not in out
    # Rows below the valid height are zero padding (after normalization).
    assert out["clip"][:, :, 16:].abs().max() == 0
    assert out["clip"][:, :, :16].abs().min() > 0
    # Frame identity: indices key-4, key-2, key, key+2 clamped to [0, 15] -> 0, 0, 0, 2.
    gray = (out["clip"][0, :, -6, -1] * 0.225 + 0.45) * 255
    np.testing.assert_allclose(gray.numpy(), [fx.frame_value(k) for k in (0, 0, 0, 2)], atol=3)
    # Proposals: all passed on (the model applies MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH, the
    # one place of that threshold), boxes scaled by 16/24 and clipped.
    props = out["proposals"]
    assert props.image_size == (21, 21)
    np.testing.assert_allclose(props.scores.numpy(), [0.95, 0.5, 0.99], rtol=1e-6)
    s = 16 / 24
    np.testing.assert_allclose(
        props.proposal_boxes.tensor[0].numpy(),
        [0.13 * 32 * 21 / 32, 0.25 * 24 * s, 0.5 * 32 * 21 / 32, 0.75 * 24 * s], rtol=1e-5,
    )


def test_assign_training_rois_known_answer():
    gt = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    gt_actions = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    props = torch.tensor([
        [0.0, 0, 10, 10.5],    # IoU 0.952 with gt0, score 0.95 -> takes gt0's labels
        [20, 20, 30, 31],      # IoU 0.909 with gt1, score 0.92 -> takes gt1's labels
        [20, 20, 30, 32],      # IoU 0.833 < 0.9 -> dropped (no labels)
        [0, 0, 10, 10],        # IoU 1, score 0.5 < 0.9 -> dropped
    ])
    scores = torch.tensor([0.95, 0.92, 0.99, 0.5])
    boxes, actions = assign_training_rois(gt, gt_actions, props, scores, 0.9, 0.9)
    torch.testing.assert_close(boxes, torch.cat([gt, props[:2]]))
    torch.testing.assert_close(actions, torch.cat([gt_actions, gt_actions]))
    # No ground truth: no ROIs, whatever the proposals.
    boxes, actions = assign_training_rois(gt[:0], gt_actions[:0], props, scores, 0.9, 0.9)
    assert boxes.shape == (0, 4) and actions.shape == (0, 3)


def test_training_rois_and_multi_hot(dicts):
    np.random.seed(0)
    out = _mapper(True, flip_prob=0.0, box_jitter=0.0)(dicts[("vidA", 900)])
    inst = out["instances"]
    # 2 GT persons + the 0.95 proposal (IoU ~0.97 with person 0); 0.5 and the far 0.99 dropped.
    assert len(inst) == 3
    expected = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0]], dtype=torch.float32)
    torch.testing.assert_close(inst.gt_actions, expected)
    # x scales by 21/32 (width truncated to int(16 * 32 / 24)), y by 16/24.
    scale = torch.tensor([21 / 32, 16 / 24, 21 / 32, 16 / 24])
    torch.testing.assert_close(inst.gt_boxes.tensor[0], torch.tensor([4, 6, 16, 18.0]) * scale)


def _bright_fraction(out, boxes):
    """Fraction of bright (white-rectangle) pixels inside each box of the key frame."""
    key = out["clip"][0, 2] * 0.225 + 0.45  # (H, W) in [0, 1]
    fr = []
    for x1, y1, x2, y2 in boxes.round().long().tolist():
        fr.append(float((key[y1:y2, x1:x2] > 0.9).float().mean()))
    return fr


def test_flip_moves_boxes_with_pixels(dicts):
    d = dicts[("vidA", 900)]
    plain = _mapper(True, flip_prob=0.0, box_jitter=0.0)(d)
    flipped = _mapper(True, flip_prob=1.0, box_jitter=0.0)(d)
    w = plain["valid_size"][1]
    b, bf = plain["instances"].gt_boxes.tensor, flipped["instances"].gt_boxes.tensor
    torch.testing.assert_close(bf[:, [0, 2]], w - b[:, [2, 0]])
    torch.testing.assert_close(bf[:, [1, 3]], b[:, [1, 3]])
    torch.testing.assert_close(flipped["clip"][..., :w], plain["clip"][..., :w].flip(-1))
    # Person 0 is the white rectangle: it stays inside its box, flipped or not.
    assert _bright_fraction(plain, b[:1])[0] > 0.8
    assert _bright_fraction(flipped, bf[:1])[0] > 0.8
    assert _bright_fraction(flipped, b[:1])[0] < 0.5  # the unflipped box misses it


def test_box_jitter_rule_and_bounds():
    rng = np.random.RandomState(0)
    boxes = np.tile(np.array([[10.0, 20, 50, 100]]), (2000, 1))
    j = jitter_boxes(boxes, 0.075, rng)
    d = j - boxes
    assert np.abs(d[:, [0, 2]]).max() <= 0.075 * 40 + 1e-9
    assert np.abs(d[:, [1, 3]]).max() <= 0.075 * 80 + 1e-9
    assert np.abs(d[:, [0, 2]]).max() > 0.07 * 40  # really uses the full range
    assert abs(d.mean()) < 0.2


def test_jittered_rois_stay_inside_the_valid_frame(dicts):
    np.random.seed(3)
    mapper = _mapper(True, flip_prob=0.5, box_jitter=0.075)
    d = dicts[("vidB", 902)]  # one full-frame box: jitter pushes it outside -> clipped
    for _ in range(10):
        out = mapper(d)
        h, w = out["valid_size"]
        b = out["instances"].gt_boxes.tensor
        assert len(b) == 1
        assert b[:, 0].min() >= 0 and b[:, 1].min() >= 0
        assert b[:, 2].max() <= w and b[:, 3].max() <= h
    mapper_plain = _mapper(True, flip_prob=0.0, box_jitter=0.075)
    b = mapper_plain(dicts[("vidA", 900)])["instances"].gt_boxes.tensor
    ref = torch.tensor([4, 6, 16, 18.0]) * torch.tensor([21 / 32, 16 / 24, 21 / 32, 16 / 24])
    dev = (b[0] - ref).abs()
    assert dev.max() > 0 and dev.max() <= 0.075 * 12 * (16 / 24) + 1e-4


def test_frame_size_mismatch_is_an_error(dicts):
    d = dict(dicts[("vidA", 900)], height=99)
    with pytest.raises(ValueError, match="frames are 24x32 but the dataset dict says 99x32"):
        _mapper(False)(d)


def test_unknown_action_id_in_dict_is_an_error(dicts):
    d = dict(dicts[("vidA", 900)])
    d["annotations"] = [{"bbox": [0, 0, 5, 5], "bbox_mode": BoxMode.XYXY_ABS, "action_ids": [3],
                         "person_id": 0}]
    with pytest.raises(ValueError, match="vidA,900: action id 3"):
        _mapper(True)(d)


def test_loaders_from_config(world):
    name = "test_data_loader_ava"
    register_ava_instances(name, {}, world["annotations"], world["label_map"], **fx.load_kwargs(world))
    try:
        cfg = setup_cfg(freeze=False)
        cfg.DATASETS.TRAIN = (name,)
        cfg.DATASETS.TEST = (name,)
        cfg.INPUT.CLIP.NUM_FRAMES = 4
        cfg.INPUT.CLIP.SHORT_SIDE = 16
        cfg.DATALOADER.NUM_WORKERS = 0
        cfg.SOLVER.IMS_PER_BATCH = 3
        cfg.SEED = 1
        batch = next(iter(build_clip_train_loader(cfg)))
        assert len(batch) == 3
        # Only key frames with annotations are trained on (vidA 902 has none).
        assert all(len(x["instances"]) >= 1 for x in batch)
        assert all(x["instances"].gt_actions.shape[1] == 4 for x in batch)
        test_batches = list(build_clip_test_loader(cfg, name))
        assert len(test_batches) == 4 and all(len(b) == 1 for b in test_batches)
        # GT key frames in CSV order, then proposal-only ones; every proposal is passed on (the model
        # applies the test score threshold).
        assert [len(b[0]["proposals"]) for b in test_batches] == [3, 0, 0, 1]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
