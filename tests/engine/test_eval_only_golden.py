"""
``train_net --eval-only`` with a converted official ACAR-Net checkpoint reproduces the official
logits and scores of the golden case (``tests/golden/acar_official/public_r50_depth2``).

The test runs the functions ``tools/train_net.py`` runs for ``--eval-only`` (``Trainer.build_model``,
``Trainer.build_checkpointer(...).resume_or_load``, ``prepare_for_inference``, ``Trainer.test``)
on a one-clip "dataset" made from the golden ``inputs.pt``; only the loader is swapped (the clip
is already normalized).
"""
from pathlib import Path

import torch
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import Boxes, Instances

from acar_d2.engine import Trainer, setup_cfg
from acar_d2.modeling.backbone.norm import FrozenStatsBatchNorm3d
from acar_d2.modeling.inference import inference_options, prepare_for_inference
from tests.reference_utils import build_golden_state_dict, check_golden_checksums, golden_case_dir

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "AVA" / "SLOWFAST_R50_ACAR_HR2O.yaml"
# Golden-case tolerance (tests/golden/README.md): float32 CPU, every golden tensor.
ATOL = RTOL = 1e-4


def golden_inputs(case_dir: Path) -> list:
    """The golden clip as one model-input dict (ARCHITECTURE.md, "Mapper output")."""
    inputs = torch.load(case_dir / "inputs.pt", weights_only=False)
    clip = inputs["clips"][0]  # (3, T, H, W), already normalized, no padding
    h, w = inputs["clip_sizes_before_padding_hw"][0]
    boxes = inputs["boxes_unpadded"] * torch.tensor([w, h, w, h], dtype=torch.float32)
    proposals = Instances((h, w))
    proposals.proposal_boxes = Boxes(boxes)
    proposals.scores = torch.ones(len(boxes))
    return [
        {
            "clip": clip,
            "valid_size": (h, w),
            "height": h,
            "width": w,
            "video_id": "golden",
            "timestamp": 0,
            "proposals": proposals,
        }
    ]


class _OutputRecorder(DatasetEvaluator):
    """Keeps the model outputs; ``evaluate`` returns the logits as the 'metrics'."""

    def reset(self):
        self.outputs = []

    def process(self, inputs, outputs):
        self.outputs.extend(o["instances"].to("cpu") for o in outputs)

    def evaluate(self):
        return {"num_clips": len(self.outputs)}


class _GoldenTrainer(Trainer):
    case_dir = None

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return [golden_inputs(cls.case_dir)]  # one batch of one clip


def test_eval_only_reproduces_official_logits(tmp_path):
    case_dir = golden_case_dir()
    state = build_golden_state_dict(case_dir)
    check_golden_checksums(case_dir, state)
    weights = tmp_path / "AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar"  # official model-zoo form
    torch.save(state, weights)

    cfg = setup_cfg(str(CONFIG), freeze=False)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = str(weights)
    # Official class order: pose classes = indices 0..12 of the 60 AVA classes (no label map needed).
    cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES = list(range(13))
    cfg.DATASETS.TEST = ("golden_one_clip",)
    cfg.OUTPUT_DIR = str(tmp_path)

    # What tools/train_net.py main() does for --eval-only:
    model = _GoldenTrainer.build_model(cfg)
    _GoldenTrainer.build_checkpointer(cfg, model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    prepare_for_inference(model, **inference_options(cfg))
    # the inference transforms (MODEL.INFERENCE.TRANSFORMS, default True): BN folded
    assert not any(isinstance(m, FrozenStatsBatchNorm3d) for m in model.modules())
    _GoldenTrainer.case_dir = case_dir
    recorder = _OutputRecorder()
    results = _GoldenTrainer.test(cfg, model, evaluators=[recorder])

    assert results == {"num_clips": 1}, results
    expected = torch.load(case_dir / "outputs.pt", weights_only=False)
    (instances,) = recorder.outputs
    for name, ref in [("action_logits", expected["logits"]), ("action_scores", expected["scores"])]:
        got = instances.get(name)
        err = (got - ref).abs().max().item()
        assert got.shape == ref.shape and torch.allclose(got, ref, atol=ATOL, rtol=RTOL), (name, err)
    # Boxes come back in key-frame pixels, unchanged (no resize, no padding in the golden clip).
    ref_boxes = golden_inputs(case_dir)[0]["proposals"].proposal_boxes.tensor
    assert torch.allclose(instances.pred_boxes.tensor, ref_boxes, atol=1e-4), instances.pred_boxes
