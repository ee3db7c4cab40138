"""Packaging for acar_d2 (after detectron2's projects/DensePose/setup.py)."""
from setuptools import find_packages, setup

setup(
    name="acar_d2",
    version="0.1.0",
    author="acar_d2 developers",
    description="ACAR-Net (Actor-Context-Actor Relation Network) as a detectron2 extension",
    packages=find_packages(exclude=("tests", "tools", "configs", "demo", "demo.*")),
    # The evaluator CLI's launcher: outside the package, so that it starts without torch/detectron2.
    py_modules=["acar_ava_eval"],
    # The 60 evaluated AVA v2.1/v2.2 classes (ava_eval.ava_format.ava_class_list()).
    package_data={"ava_eval": ["ava_labelmap_v2.2.pbtxt"]},
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
        "timm==1.0.31",  # VideoMAE ViT blocks
    ],
    entry_points={
        "console_scripts": [
            "acar-ava-eval=acar_ava_eval:main",
        ]
    },
)
