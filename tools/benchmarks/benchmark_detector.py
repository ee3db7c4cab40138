#!/usr/bin/env python
"""
Benchmark of the person detector inside ACARNet (CPU by default):

* detector ms per key frame: the tiny synthetic detector and the COCO Faster R-CNN R50-FPN 3x
  architecture (random weights), on a 160x120 (synthetic-size) and a 1280x720 frame;
* one joint training step (backbone + action head + detector) vs the action step alone, for the
  synthetic joint config at its batch (8 clips; detector losses on TRAIN_MAX_IMAGES key frames);
* peak memory: RSS growth (ru_maxrss) of one training step, each in a fresh process.

Usage::

    python tools/benchmarks/benchmark_detector.py [--repeats 3] [--device cpu]
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
TINY = "configs/Synthetic/person_detector/faster_rcnn_R18_tiny_person.yaml"
COCO = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"
JOINT = "configs/Synthetic/acar_detector_SLOWFAST_R18_1.5k_aca_world.yaml"


def _acar_cfg(device, *opts):
    from acar_d2.engine import setup_cfg

    return setup_cfg(str(REPO / JOINT), ["MODEL.DEVICE", device] + list(opts))


def detector_ms(config_file, frame, device, repeats):
    from acar_d2.data.detection_utils import detector_image
    from acar_d2.modeling.person_detector import build_person_detector

    cfg = _acar_cfg(device, "MODEL.PERSON_DETECTOR.CONFIG_FILE", config_file)
    det = build_person_detector(cfg).eval()
    image, _ = detector_image(frame, det.augmentation(False), det.input_format)
    det.detect([image], [frame.shape[:2]])  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        det.detect([image], [frame.shape[:2]])
    return 1000 * (time.perf_counter() - t) / repeats, tuple(image.shape[-2:])


def _batch(cfg, n=8):
    from detectron2.data import DatasetCatalog

    from acar_d2.data.clip_mapper import ClipDatasetMapper

    mapper = ClipDatasetMapper(cfg, True)
    return [mapper(d) for d in DatasetCatalog.get(cfg.DATASETS.TRAIN[0])[:n]]


def step_seconds(cfg, joint: bool, repeats: int, batch=None):
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    torch.manual_seed(0)
    model = build_model(cfg).train()
    batch = batch or _batch(cfg)
    times = []
    with EventStorage():
        for _ in range(repeats + 1):
            t = time.perf_counter()
            if joint:
                losses = model(batch)
            else:  # the action step alone: backbone + head on the same ROIs
                boxes = [x["instances"].gt_boxes for x in batch]
                logits = torch.cat(model.predict_logits(batch, boxes))
                losses = model.roi_heads.losses(
                    logits, torch.cat([x["instances"].gt_actions for x in batch]))
            sum(losses.values()).backward()
            model.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status (Linux), in KiB: VmRSS (now) or VmHWM (peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _peak_child(joint: bool, device: str) -> float:
    """
    MiB of peak-RSS growth of one training step, in a fresh process: VmHWM reset through
    /proc/self/clear_refs just before the step (not ``ru_maxrss``, which a child inherits from its
    parent at fork time), minus the RSS before it.
    """
    code = (
        "import sys, json; sys.argv=['x']; sys.path.insert(0, %r);"
        "import benchmark_detector as b; cfg=b._acar_cfg(%r); batch=b._batch(cfg);"
        "import torch; torch.manual_seed(0); import gc; gc.collect();"
        "r0=b._status_kib('VmRSS'); open('/proc/self/clear_refs', 'w').write('5');"
        "b.step_seconds(cfg, %r, 0, batch);"
        "print(json.dumps(max(0, b._status_kib('VmHWM') - r0) / 1024))"
    ) % (str(REPO / "tools" / "benchmarks"), device, joint)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, ACAR_DATASETS=os.environ.get("ACAR_DATASETS", "datasets")))
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-coco", action="store_true", help="skip the R50-FPN rows (slow on CPU)")
    args = p.parse_args(argv)
    os.environ.setdefault("ACAR_DATASETS", str(REPO / "datasets"))
    import acar_d2  # noqa: F401

    rng = np.random.default_rng(0)
    frames = {"160x120": rng.integers(0, 255, (120, 160, 3), dtype=np.uint8),
              "1280x720": rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)}
    rows = []
    for name, cfg_file in [("tiny synthetic R18-FPN", TINY)] + ([] if args.skip_coco else [("COCO R50-FPN 3x (random)", COCO)]):
        for fname, frame in frames.items():
            ms, size = detector_ms(cfg_file, frame, args.device, args.repeats)
            rows.append((f"detector {name}, {fname} frame (input {size[1]}x{size[0]})", f"{ms:.1f} ms/frame"))
    cfg = _acar_cfg(args.device)
    batch = _batch(cfg)
    joint = step_seconds(cfg, True, args.repeats, batch)
    action = step_seconds(cfg, False, args.repeats, batch)
    rows.append(("joint train step (8 clips, detector on TRAIN_MAX_IMAGES)", f"{1000 * joint:.0f} ms"))
    rows.append(("action train step alone (8 clips)", f"{1000 * action:.0f} ms"))
    rows.append(("joint / action", f"{joint / action:.2f}x"))
    rows.append(("peak RSS growth, joint step (fresh process)", f"{_peak_child(True, args.device):.0f} MiB"))
    rows.append(("peak RSS growth, action step (fresh process)", f"{_peak_child(False, args.device):.0f} MiB"))
    width = max(len(r[0]) for r in rows)
    print(f"| {'measurement':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k:<{width}} | {v} |")
    return rows


if __name__ == "__main__":
    main()
