"""Packaging for acar_d2 (after detectron2's setup.py and projects/DensePose/setup.py)."""
import glob
import os
import shutil
from typing import List

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def get_model_zoo_configs() -> List[str]:
    """
    Ship the yaml configs inside the package as ``acar_d2/model_zoo/configs`` (detectron2 ships
    ``detectron2/model_zoo/configs`` the same way): a relative link to ``configs/`` (a copy where
    links are not possible), so that ``acar_d2.model_zoo`` finds them in an installed wheel while
    ``configs/`` stays the one folder users edit. Returns them relative to ``acar_d2/model_zoo``.
    """
    source = os.path.join(HERE, "configs")
    destination = os.path.join(HERE, "acar_d2", "model_zoo", "configs")
    if os.path.isdir(source):  # a source tree (not an sdist's already-copied folder)
        if os.path.islink(destination):
            os.unlink(destination)
        elif os.path.isdir(destination):
            shutil.rmtree(destination)
        try:
            os.symlink(os.path.join("..", "..", "configs"), destination)
        except OSError:
            shutil.copytree(source, destination)
    root = os.path.join(HERE, "acar_d2", "model_zoo")
    return sorted(os.path.relpath(p, root) for p in
                  glob.glob(os.path.join(root, "configs", "**", "*.yaml"), recursive=True))


setup(
    name="acar_d2",
    version="0.1.0",
    author="acar_d2 developers",
    description="ACAR-Net (Actor-Context-Actor Relation Network) as a detectron2 extension",
    # The library and its torch-free evaluator only: tests/, tools/, demo/ and datasets/ are
    # scripts of the repository, not installed packages (nothing in acar_d2 imports them).
    packages=find_packages(include=("acar_d2", "acar_d2.*", "ava_eval", "ava_eval.*")),
    package_data={
        # The 60 evaluated AVA v2.1/v2.2 classes (ava_eval.label_map.ava_class_list()).
        "ava_eval": ["ava_labelmap_v2.2.pbtxt"],
        "acar_d2.model_zoo": get_model_zoo_configs(),
    },
    python_requires=">=3.10",
    # detectron2 itself is deliberately not listed: it is installed as the `sal-detectron2`
    # wheel (or from source) by `make setup`, and checked at import time by acar_d2/__init__.py.
    install_requires=[
        "torch>=2.0",
        "torchvision",
        "numpy<2",
        "fvcore",
        "iopath",
        "av>=12",
        "Pillow",
        "tabulate",
        "matplotlib",
        "filelock>=3.12",
        "timm==1.0.31",  # VideoMAE ViT blocks
    ],
    # tools/export_model.py and tools/demo.py --engine onnxruntime / openvino (docs/EXPORT.md);
    # ml_dtypes < 0.6 keeps onnx on numpy 1.
    extras_require={"export": ["onnx==1.23.2", "onnxruntime==1.31.1", "openvino==2026.4.1",
                               "ml_dtypes<0.6"]},
    entry_points={
        "console_scripts": [
            # the evaluator command (also `python -m ava_eval`): torch-free, starts at once
            "acar-ava-eval=ava_eval.cli:main",
        ]
    },
)
