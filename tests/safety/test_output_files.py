"""
No file is lost without a word: ``tools/convert_checkpoint.py`` never writes over its input (nor
an existing output unless ``--overwrite``) and runs its strict check in the argument order of its
docstring; training refuses an OUTPUT_DIR holding another run unless ``--resume`` /
``--overwrite``; after a resume ``metrics.json`` holds each iteration once.
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from acar_d2.checkpoint import CheckpointMismatchError
from acar_d2.engine import Trainer, setup_cfg

from .conftest import INSTANT_CONFIG, load_train_net, tiny_cfg, tiny_cfg_opts

REPO = Path(__file__).resolve().parents[2]


def load_convert_tool():
    spec = importlib.util.spec_from_file_location(
        "convert_checkpoint", REPO / "tools" / "convert_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def instant_model_file(tmp_path: Path, *opts) -> Path:
    """A detectron2-format training checkpoint of the instant-test model (with a trainer entry)."""
    from detectron2.modeling import build_model

    cfg = setup_cfg(str(INSTANT_CONFIG), ["MODEL.DEVICE", "cpu", *opts])
    path = tmp_path / "model_0000099.pth"
    torch.save({"model": build_model(cfg).state_dict(), "trainer": {"optimizer": {"state": {}}},
                "iteration": 99}, path)
    return path


def test_convert_refuses_its_input_as_output_and_an_existing_output(tmp_path):
    tool = load_convert_tool()
    src = instant_model_file(tmp_path)
    before = src.read_bytes()
    with pytest.raises(SystemExit, match="is the input checkpoint"):
        tool.main([str(src), str(src)])
    # the same file through another spelling of its path
    with pytest.raises(SystemExit, match="is the input checkpoint"):
        tool.main([str(src), str(tmp_path / "." / src.name)])
    assert src.read_bytes() == before
    out = tmp_path / "out.pth"
    out.write_bytes(b"someone's file")
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        tool.main([str(src), str(out)])
    assert out.read_bytes() == b"someone's file"
    tool.main([str(src), str(out), "--overwrite"])
    converted = torch.load(out, weights_only=True)
    assert set(converted) == {"model", "__author__"} and converted["model"].keys() == torch.load(
        src, weights_only=True)["model"].keys()
    assert not (tmp_path / "out.pth.tmp").exists()


def test_convert_docstring_argument_order_runs_the_strict_check(tmp_path, capsys):
    tool = load_convert_tool()
    src = instant_model_file(tmp_path)
    # IN OUT --config-file CFG (the docstring's order): the check runs and passes ...
    tool.main([str(src), str(tmp_path / "a.pth"), "--config-file", str(INSTANT_CONFIG)])
    assert "strict load into the model of" in capsys.readouterr().out
    # ... and it is a real check: the same file into a wider head fails, overrides after the path
    with pytest.raises(CheckpointMismatchError, match="roi_heads"):
        tool.main([str(src), str(tmp_path / "b.pth"), "--config-file", str(INSTANT_CONFIG),
                   "MODEL.ACTION_HEAD.HIDDEN_DIM", "16"])
    with pytest.raises(SystemExit):  # overrides without a config are an error, not ignored
        tool.main([str(src), str(tmp_path / "c.pth"), "MODEL.ACTION_HEAD.HIDDEN_DIM", "16"])


def fake_finished_run(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"model_final.pth": b"final weights", "last_checkpoint": b"model_final.pth",
             "metrics.json": b'{"iteration": 0, "total_loss": 1.0}\n', "config.yaml": b"old: 1\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


TWO_ITERS = ["SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "100", "TEST.EVAL_PERIOD", "0",
             "DATASETS.TEST", "()"]


def test_training_refuses_an_output_dir_holding_a_run(tiny_world, tmp_path):
    out = tmp_path / "run"
    files = fake_finished_run(out)
    train_net = load_train_net()
    argv = ["--config-file", str(INSTANT_CONFIG)] + tiny_cfg_opts(out) + TWO_ITERS
    with pytest.raises(FileExistsError, match=r"already holds a training run.*--resume.*--overwrite"):
        train_net.main(train_net.argument_parser().parse_args(argv))
    assert {n: (out / n).read_bytes() for n in files} == files  # config.yaml included
    # the Trainer refuses on its own too (tools that build it directly)
    trainer = Trainer(tiny_cfg(out, TWO_ITERS))
    with pytest.raises(FileExistsError, match="already holds a training run"):
        trainer.resume_or_load(resume=False)
    del trainer
    assert {n: (out / n).read_bytes() for n in files} == files
    # asked to overwrite: trains, the old metrics are set aside, not mixed
    train_net.main(train_net.argument_parser().parse_args(["--overwrite"] + argv))
    assert (out / "model_final.pth").read_bytes() != files["model_final.pth"]
    iters = [json.loads(x)["iteration"] for x in (out / "metrics.json").read_text().splitlines()]
    assert iters == [0, 1], iters
    aside = list(out.glob("metrics.json.before-overwrite-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == files["metrics.json"]


def test_resume_keeps_each_iteration_once_in_metrics(tiny_world, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_cfg(out, ["SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "100",
                         "TEST.EVAL_PERIOD", "0", "DATASETS.TEST", "()"])
    trainer = Trainer(cfg)
    trainer.iter = 2
    trainer.checkpointer.save("model_0000002", iteration=2)  # + last_checkpoint
    del trainer
    # what the killed run left: iterations 0..4 logged, the last line cut by the kill
    lines = [json.dumps({"iteration": i, "total_loss": 9.0 + i}) + "\n" for i in range(5)]
    (out / "metrics.json").write_text("".join(lines) + '{"iteration": 5, "total_lo')
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 3
    trainer.train()
    del trainer
    records = [json.loads(x) for x in (out / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [0, 1, 2, 3], records
    assert [r["total_loss"] for r in records[:3]] == [9.0, 10.0, 11.0]  # kept as written
    assert records[3]["total_loss"] != 12.0  # iteration 3 is the resumed run's
    dropped = (out / "metrics.dropped.json").read_text().splitlines()
    assert dropped == [lines[3].strip(), lines[4].strip(), '{"iteration": 5, "total_lo']
