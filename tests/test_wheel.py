"""
The wheel installs cleanly (issue 30): ``pip wheel .`` holds the project's own packages and the yaml
configs inside ``acar_d2/model_zoo/configs`` (as detectron2 ships its own), nothing of ``tests/``,
``tools/``, ``demo/``; installed into a fresh virtual environment it builds zoo models and runs the
evaluator command (``acar-ava-eval``, ``python -m ava_eval``) from a folder outside the checkout.

The fresh environment sees the running interpreter's site-packages (torch, detectron2, ...) through
a ``.pth`` line, without reinstalling them; a path added that way has its own ``.pth`` files (the
checkout's editable install) ignored, so ``acar_d2`` can only come from the wheel.
"""
import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "ava_eval" / "public_small"
# What the build does not need and a checkout may hold in bulk (gitignored data, environments).
_SKIP = {".git", ".venv", "output", "build", "dist", "__pycache__", ".pytest_cache"}

_BUILD_SCRIPT = r"""
import json, sys
import torch
from detectron2.modeling import build_model

import acar_d2
from acar_d2 import model_zoo
from acar_d2.engine import setup_cfg

out = {"acar_d2": acar_d2.__file__}
cfg = model_zoo.get_config("ava_acar_r50", trained=False)
cfg.MODEL.DEVICE = "cpu"
out["zoo_config"] = model_zoo.get_config_file("ava_acar_r50")
out["zoo_cfg"] = cfg.dump()
model = build_model(cfg)
out["zoo_model"] = [type(model).__name__, type(model.roi_heads).__name__,
                    sum(p.numel() for p in model.parameters())]
# a config whose person detector is a packaged file ("configs/Synthetic/person_detector/...")
path = model_zoo.get_config_file("Synthetic/acar_detector_SLOWFAST_R18_1.5k_aca_world.yaml")
torch.manual_seed(0)
model = build_model(setup_cfg(path, ["MODEL.DEVICE", "cpu"]))
out["detector_config"] = model.person_detector.config_file
out["synthetic_params"] = sum(p.numel() for p in model.parameters())
print("RESULT " + json.dumps(out))
"""


def _ignore(folder, names):
    skip = {n for n in names if n in _SKIP or n.endswith(".egg-info")}
    if Path(folder).name == "datasets":  # the dataset folders; only their scripts are sources
        skip |= {n for n in names if (Path(folder) / n).is_dir()}
    return skip


def _clean_env():
    """The environment without the checkout on PYTHONPATH (the wheel's copy must be the one)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """``pip wheel`` of a copy of the checkout (the checkout itself gets no build/ folder)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=_ignore, symlinks=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, env=_clean_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp / "dist").glob("acar_d2-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv with the wheel installed (by ``installer``, the reference wheel installer)
    and the running interpreter's site-packages visible through a ``.pth`` line."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    env_dir = tmp_path_factory.mktemp("env") / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True, env=_clean_env()).strip())
    (purelib / "running_interpreter.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    scheme = {"purelib": purelib, "platlib": purelib, "scripts": env_dir / "bin",
              "headers": env_dir / "include", "data": env_dir}
    destination = SchemeDictionaryDestination(
        {k: str(v) for k, v in scheme.items()}, interpreter=str(python), script_kind="posix")
    with WheelFile.open(wheel) as source:
        install(source, destination, {"INSTALLER": b"tests/test_wheel.py"})
    return env_dir, purelib


def test_wheel_holds_the_packages_and_the_configs_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"acar_d2", "ava_eval", "acar_d2-0.1.0.dist-info"}, tops
    configs = sorted(n[len("acar_d2/model_zoo/configs/"):] for n in names
                     if n.startswith("acar_d2/model_zoo/configs/"))
    in_repo = sorted(str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.yaml"))
    assert configs == in_repo and len(configs) > 40, (len(configs), len(in_repo))
    assert "ava_eval/ava_labelmap_v2.2.pbtxt" in names
    entry_points = zipfile.ZipFile(wheel).read("acar_d2-0.1.0.dist-info/entry_points.txt").decode()
    assert "acar-ava-eval = ava_eval.cli:main" in entry_points, entry_points


def test_installed_wheel_builds_zoo_models_outside_the_checkout(installed, tmp_path):
    from detectron2.modeling import build_model

    from acar_d2 import model_zoo
    from acar_d2.engine import setup_cfg

    env_dir, purelib = installed
    proc = subprocess.run([str(env_dir / "bin" / "python"), "-c", _BUILD_SCRIPT],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                          env=_clean_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    got = json.loads(line[len("RESULT "):])
    package = purelib / "acar_d2"
    assert got["acar_d2"] == str(package / "__init__.py"), got
    configs = package / "model_zoo" / "configs"
    assert got["zoo_config"] == str(configs / "AVA" / "SLOWFAST_R50_ACAR_HR2O.yaml"), got
    assert got["detector_config"] == "configs/Synthetic/person_detector/faster_rcnn_R18_tiny_person.yaml"
    # the same config as from the checkout, a full-size ACAR-Net (SlowFast R50: 30-40 M parameters)
    cfg = model_zoo.get_config("ava_acar_r50", trained=False)
    cfg.MODEL.DEVICE = "cpu"
    assert got["zoo_cfg"] == cfg.dump()
    name, head, num_params = got["zoo_model"]
    assert (name, head) == ("ACARNet", "ACARROIHeads") and 30e6 < num_params < 60e6, got["zoo_model"]
    # the same model as from the checkout
    path = REPO / "configs" / "Synthetic" / "acar_detector_SLOWFAST_R18_1.5k_aca_world.yaml"
    model = build_model(setup_cfg(str(path), ["MODEL.DEVICE", "cpu"]))
    assert got["synthetic_params"] == sum(p.numel() for p in model.parameters())


def test_installed_command_scores_the_golden_case(installed, tmp_path):
    """The one evaluator door, installed: ``acar-ava-eval`` and ``python -m ava_eval``."""
    env_dir, _ = installed
    expected = json.loads((GOLDEN / "expected.json").read_text())
    doors = {"acar-ava-eval": [str(env_dir / "bin" / "acar-ava-eval")],
             "python -m ava_eval": [str(env_dir / "bin" / "python"), "-m", "ava_eval"]}
    for name, command in doors.items():
        out = tmp_path / f"{command[-1]}.json"
        proc = subprocess.run(
            command + ["--groundtruth", str(GOLDEN / "gt.csv"), "--detections",
                       str(GOLDEN / "det.csv"), "--labelmap", str(GOLDEN / "labelmap.pbtxt"),
                       "--exclusions", str(GOLDEN / "exclusions.csv"), "--json", str(out)],
            capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=_clean_env(),
        )
        assert proc.returncode == 0, (name, proc.stderr[-3000:])
        last = proc.stdout.strip().splitlines()[-1]
        assert last == f"frame-mAP@0.5 (%): {100.0 * expected['mAP']!r}", (name, proc.stdout[-500:])
        assert json.loads(out.read_text())["frame_mAP"] == 100.0 * expected["mAP"], name
        # a bad input: the one-line error, exit code 2
        bad = subprocess.run(command + ["-g", "missing.csv", "-d", "missing.csv", "-l", "m.pbtxt"],
                             capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
                             env=_clean_env())
        assert bad.returncode == 2, (name, bad.returncode)
        assert bad.stderr.strip() == ("acar-ava-eval: error: --groundtruth: file not found: "
                                      "missing.csv"), bad.stderr
