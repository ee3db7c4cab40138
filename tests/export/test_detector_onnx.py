"""
The person detector exported through detectron2's TracingAdapter (acar_d2.export) and run in
onnxruntime and in OpenVINO behind ``PersonDetector.detect``: same boxes and scores as PyTorch on images of other
sizes and with other numbers of detections than the traced one (no ``detectron2._C`` involved).
"""
import pytest
import torch

from acar_d2.engine import setup_cfg
from acar_d2.export import ENGINES, ONNXPersonDetector, export_person_detector_onnx
from acar_d2.modeling.person_detector import build_person_detector
from tests.utils.demo_helpers import DETECTOR_CONFIG, DETECTOR_OPTS


def _images():
    g = torch.Generator().manual_seed(0)
    noise = (torch.rand(3, 120, 160, generator=g) * 255).to(torch.uint8)
    wide = (torch.rand(3, 96, 200, generator=g) * 255).to(torch.uint8)
    wide[:, :, :90] = 40  # a flat region: fewer boxes
    return noise, wide


@pytest.mark.parametrize("engine", ENGINES)
def test_exported_detector_equals_pytorch(tmp_path, engine):
    torch.manual_seed(0)
    det = build_person_detector(setup_cfg(DETECTOR_CONFIG, DETECTOR_OPTS)).eval()
    noise, wide = _images()
    # A score threshold inside the untrained detector's score range, so that the number of
    # detections differs between the images (it is part of the exported graph).
    scores = det.detect([noise, wide], [(120, 160), (96, 200)], score_thresh=0.0)
    pooled = torch.cat([s.scores for s in scores]).sort().values
    det.roi_heads.box_predictor.test_score_thresh = float(pooled[len(pooled) // 2])
    path = export_person_detector_onnx(det, noise, str(tmp_path / "person_detector.onnx"))
    onnx_det = ONNXPersonDetector.from_detector(path, det, engine=engine)
    counts = []
    for image, size in ((noise, (120, 160)), (wide, (96, 200)), (wide, (48, 100))):
        ref = det.detect([image], [size], score_thresh=0.0)[0]
        got = onnx_det.detect([image], [size], score_thresh=0.0)[0]
        assert len(got) == len(ref), (size, len(got), len(ref))
        assert torch.allclose(got.proposal_boxes.tensor, ref.proposal_boxes.tensor, atol=1e-3)
        assert torch.allclose(got.scores, ref.scores, atol=1e-5)
        assert got.image_size == size
        counts.append(len(ref))
    assert len(set(counts[:2])) == 2 and min(counts) > 0, counts
