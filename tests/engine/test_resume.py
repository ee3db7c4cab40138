"""
Resume helpers: sampler position and RNG states; checkpoints written by the trainer hold the RNG
states in plain types, so plain detectron2 / ``torch.load(weights_only=True)`` read them.
"""
import io
import itertools
import random

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from acar_d2.engine import ResumableTrainingSampler, Trainer, capture_rng_state, restore_rng_state

from .conftest import tiny_cfg


def test_sampler_continues_the_same_stream():
    full = list(itertools.islice(iter(ResumableTrainingSampler(7, seed=3)), 40))
    resumed = list(itertools.islice(iter(ResumableTrainingSampler(7, seed=3, start_index=13)), 27))
    assert resumed == full[13:], (resumed, full[13:])
    # Every epoch of 7 indices is a permutation, and the epochs differ (shuffled per epoch).
    assert sorted(full[:7]) == list(range(7)) and sorted(full[7:14]) == list(range(7))
    assert full[:7] != full[7:14]


def test_sampler_rejects_negative_start():
    with pytest.raises(ValueError, match="start_index"):
        ResumableTrainingSampler(5, seed=0, start_index=-1)


def test_rng_state_round_trip():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = capture_rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    # Advance all generators, then go back.
    random.random(), np.random.rand(5), torch.rand(5)
    restore_rng_state(state)
    got = (random.random(), float(np.random.rand()), float(torch.rand(())))
    assert got == expected, (got, expected)


def test_rng_state_missing_key_raises():
    state = capture_rng_state()
    del state["numpy"]
    with pytest.raises(KeyError, match="numpy"):
        restore_rng_state(state)



def _draws():
    """A few values of every generator, Gaussian caches included (python and numpy keep one)."""
    return (
        [random.random(), random.gauss(0.0, 1.0), random.gauss(0.0, 1.0), random.randrange(10**9)],
        np.random.randn(3).tolist() + np.random.rand(2).tolist() + [int(np.random.randint(2**31 - 1))],
        torch.rand(4).tolist() + torch.randn(3).tolist() + [int(torch.randint(10**9, ()))],
    )


def _scramble_generators():
    random.seed(11), np.random.seed(12), torch.manual_seed(13)
    # Leave a cached Gaussian in python's and numpy's generator (both make pairs).
    random.gauss(0.0, 1.0), np.random.randn(3), torch.rand(7)


def _assert_plain(obj, where="rng_state"):
    """Only str / int / float / None / list / dict / tensors: what weights_only unpickling allows."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert isinstance(k, str), (where, k)
            _assert_plain(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _assert_plain(v, f"{where}[{i}]")
    else:
        assert obj is None or isinstance(obj, (str, int, float, torch.Tensor)), (where, type(obj))
        assert not isinstance(obj, np.generic), (where, type(obj))


def test_rng_state_is_plain_and_weights_only_loadable():
    _scramble_generators()
    state = capture_rng_state()
    _assert_plain(state)
    assert state["numpy"]["bit_generator"] == "MT19937" and len(state["numpy"]["keys"]) == 624
    assert state["numpy"]["has_gauss"] == 1 and state["python"]["gauss_next"] is not None
    buf = io.BytesIO()
    torch.save({"rng_state": state}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)["rng_state"]
    expected = _draws()
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    restore_rng_state(loaded)
    assert _draws() == expected


def test_rng_state_legacy_tuple_form_still_restores():
    # Checkpoints written before the plain-type form held the raw getstate() tuples.
    _scramble_generators()
    legacy = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    expected = _draws()
    restore_rng_state(legacy)
    assert _draws() == expected


def test_trainer_checkpoint_loads_with_plain_detectron2_and_resumes_rng_streams(tiny_world, tmp_path):
    cfg = tiny_cfg(tmp_path, ["SOLVER.MAX_ITER", "4", "SOLVER.STEPS", "(3,)"])
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    _scramble_generators()
    # What the PeriodicCheckpointer hook does after iteration 2 of train().
    trainer.iter = 2
    trainer.checkpointer.save("model_0000002", iteration=2)
    uninterrupted = _draws()
    path = tmp_path / "model_0000002.pth"

    # torch's safe loader accepts the whole file; the RNG entry is plain types only.
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["iteration"] == 2
    assert len(ckpt["trainer"]["rng_states"]) == 1  # one per rank
    rng = ckpt["trainer"]["rng_states"][0]
    _assert_plain(rng)
    assert {"python", "numpy", "torch"} <= set(rng), sorted(rng)

    # Plain detectron2 loads the model weights (and hands back the rest of the checkpoint).
    model = build_model(cfg)
    rest = DetectionCheckpointer(model).load(str(path))
    assert "trainer" in rest and rest["iteration"] == 2
    saved = trainer.model.state_dict()
    loaded = model.state_dict()
    assert saved.keys() == loaded.keys()
    for k in saved:
        assert torch.equal(saved[k], loaded[k]), k

    # --resume in a fresh trainer (generators elsewhere) continues the same streams.
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    resumed = Trainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 3, resumed.start_iter
    got = _draws()
    for name, a, b in zip(("python", "numpy", "torch"), got, uninterrupted):
        assert a == b, (name, a, b)


def test_sampler_positions_are_places_in_the_stream_of_all_ranks(monkeypatch):
    from detectron2.utils import comm

    full = list(itertools.islice(iter(ResumableTrainingSampler(7, seed=3)), 40))
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    for rank in (0, 1):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        keys = list(itertools.islice(
            iter(ResumableTrainingSampler(7, seed=3, start_index=4, with_positions=True)), 10))
        positions = [p for _, p in keys]
        assert positions == [2 * i + rank for i in range(4, 14)], (rank, positions)
        assert [index for index, _ in keys] == [full[p] for p in positions], (rank, keys)


def test_seeded_rng_depends_on_keys_only_and_restores_outer_streams():
    from acar_d2.data.sample_rng import seeded_rng

    def inner():
        return (random.random(), float(np.random.rand()), float(torch.rand(())))

    _scramble_generators()
    with seeded_rng(5, 0, 17):
        first = inner()
    after = _draws()
    _scramble_generators()
    np.random.rand(3), torch.rand(2)  # another history
    with seeded_rng(5, 0, 17):
        second = inner()
    with seeded_rng(5, 0, 18):
        other = inner()
    assert first == second and all(a != b for a, b in zip(first, other)), (first, second, other)
    _scramble_generators()
    with seeded_rng(5, 0, 17):
        inner()
    assert _draws() == after  # the block left the process's generators where they were
    with pytest.raises(ValueError, match="non-negative"):
        seeded_rng(-1, 0, 0).__enter__()


def _loader_batches(cfg, num_workers: int, start_iter: int, num_batches: int) -> list:
    """(clip, gt_boxes) of the first batches of the training loader: flips and jitter show."""
    cfg = cfg.clone()
    cfg.DATALOADER.NUM_WORKERS = num_workers
    loader = Trainer.build_train_loader(cfg, seed=cfg.SEED, start_iter=start_iter)
    out = []
    for batch in itertools.islice(iter(loader), num_batches):
        out.append([(d["video_id"], d["timestamp"], d["clip"], d["instances"].gt_boxes.tensor)
                    for d in batch])
    return out


def test_train_loader_stream_is_independent_of_workers_and_start(tiny_world, tmp_path):
    cfg = tiny_cfg(tmp_path, ["SOLVER.IMS_PER_BATCH", "2"])
    assert cfg.INPUT.CLIP.FLIP_PROB > 0 and cfg.INPUT.CLIP.BOX_JITTER > 0
    reference = _loader_batches(cfg, 0, 0, 6)
    for workers, start in ((2, 0), (2, 3), (1, 5), (0, 2)):
        got = _loader_batches(cfg, workers, start, 6 - start)
        for it, (a_batch, b_batch) in enumerate(zip(got, reference[start:]), start):
            for a, b in zip(a_batch, b_batch):
                assert a[:2] == b[:2], (workers, start, it, a[:2], b[:2])
                assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3]), (workers, start, it)
    # The draws vary along the stream: against the same stream without augmentation, some clips
    # (not all) are flipped, and box jitter moved the boxes.
    plain = tiny_cfg(tmp_path, ["SOLVER.IMS_PER_BATCH", "2", "INPUT.CLIP.FLIP_PROB", "0.0",
                                "INPUT.CLIP.BOX_JITTER", "0.0"])
    clips = [(a, b) for ab, bb in zip(reference, _loader_batches(plain, 0, 0, 6)) for a, b in zip(ab, bb)]
    assert all(a[:2] == b[:2] for a, b in clips)
    flipped = sum(not torch.equal(a[2], b[2]) for a, b in clips)
    assert 0 < flipped < len(clips), (flipped, len(clips))
    assert any(not torch.equal(a[3], b[3]) for a, b in clips)


def test_each_rank_resumes_its_own_generator_states(monkeypatch):
    from types import SimpleNamespace

    from detectron2.utils import comm

    trainer = SimpleNamespace(start_iter=30)
    restore = Trainer._restore_rank_rng_states.__get__(trainer)
    states, expected = [], []
    for rank in (0, 1):
        random.seed(20 + rank), np.random.seed(20 + rank), torch.manual_seed(20 + rank)
        states.append(capture_rng_state())
        expected.append(_draws())
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    for rank in (0, 1):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        _scramble_generators()
        restore(states)
        assert _draws() == expected[rank], rank
    # A checkpoint of one rank resumed on two: rank 1 forks a stream of its own from rank 0's.
    _scramble_generators()
    restore(states[:1])
    forked = _draws()
    assert forked != expected[0] and forked != expected[1]


def test_evaluation_inside_preserved_rng_takes_no_training_draws():
    from acar_d2.engine.resume import preserved_rng

    _scramble_generators()
    expected = _draws()
    _scramble_generators()
    with preserved_rng():
        random.random(), np.random.randn(5), torch.rand(9)  # what an evaluation may draw
    assert _draws() == expected


def test_rank_states_are_gathered_when_the_checkpointer_saves():
    from acar_d2.engine.resume import checkpoint_due

    saved = [it for it in range(25) if checkpoint_due(it, 10, 25)]
    assert saved == [9, 19, 24]  # model_0000009, model_0000019, model_final
    assert [it for it in range(5) if checkpoint_due(it, 0, 5)] == [4]