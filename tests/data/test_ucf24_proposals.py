"""UCF101-24 test boxes from a proposal file (timestamp = 1-based frame, normalized boxes)."""
import numpy as np

from acar_d2.data.datasets.ucf101_24 import load_ucf24_instances
from acar_d2.data.formats import write_proposals
from acar_d2.data.layouts import FirstExisting

from .test_ucf24 import ucf  # noqa: F401  (fixture)


def test_ucf24_proposals_scaled_and_optional(ucf, tmp_path):  # noqa: F811
    vid = "Fencing/v_Fencing_g02_c01"
    pkl = write_proposals({(vid, 3): np.array([[0.0, 0.5, 0.5, 1.0, 0.3], [0.25, 0.25, 0.5, 0.5, 0.01]],
                                              np.float32)}, str(tmp_path / "p.pkl"), "mmaction_pkl")
    test = load_ucf24_instances(str(ucf / "UCF101v2-GT.pkl"), str(ucf / "rgb-images"), split="test",
                                proposals=pkl)
    by_t = {d["timestamp"]: d for d in test}
    # all boxes kept (no score filter at loading), scaled to the 32 x 24 frames
    np.testing.assert_allclose(by_t[3]["proposals"]["boxes"], [[0, 12, 16, 24], [8, 6, 16, 12]])
    np.testing.assert_allclose(by_t[3]["proposals"]["scores"], [0.3, 0.01], rtol=1e-6)
    assert by_t[2]["proposals"]["boxes"].shape == (0, 4)
    none = load_ucf24_instances(str(ucf / "UCF101v2-GT.pkl"), str(ucf / "rgb-images"), split="test",
                                proposals=FirstExisting((str(tmp_path / "absent.pkl"),), required=False))
    assert all(len(d["proposals"]["scores"]) == 0 for d in none)
