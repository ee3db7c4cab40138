"""
The action loss in log space: the official criterion's values (binary cross-entropy on clamped
softmax / sigmoid probabilities) to float32 round-off, and a gradient where the official one has
none (a probability rounded to exactly 0 or 1 on the wrong side).
"""
import torch
import torch.nn.functional as F

from acar_d2.modeling.roi_heads.loss import (
    action_log_probabilities,
    action_probabilities,
    pose_softmax_bce_loss,
)

POSE = [0, 1, 2, 3]


def _official(logits, targets, pose):
    return F.binary_cross_entropy(action_probabilities(logits, pose), targets)


def test_values_equal_the_official_criterion():
    g = torch.Generator().manual_seed(0)
    for pose in (POSE, [], [1, 5, 7]):
        logits = torch.randn(9, 10, generator=g) * 3
        targets = (torch.rand(9, 10, generator=g) > 0.6).float()
        got, ref = pose_softmax_bce_loss(logits, targets, pose), _official(logits, targets, pose)
        # (1e-5: near saturation the official form rounds p before taking its logarithm)
        assert abs(float(got - ref)) <= 1e-5 * float(ref), (pose, float(got), float(ref))
    log_p, log_not_p = action_log_probabilities(logits, POSE)
    p = action_probabilities(logits, POSE)
    assert torch.allclose(log_p.exp(), p, atol=1e-6) and torch.allclose(log_not_p.exp(), 1 - p, atol=1e-6)


def test_saturated_wrong_predictions_keep_a_gradient():
    logits = torch.zeros(2, 10)
    targets = torch.zeros(2, 10)
    targets[:, 0] = 1.0  # pose class 0 is right ...
    logits[0, 2] = 40.0  # ... but pose class 2 wins by 40: softmax rounds to exactly 1
    logits[1, 7] = 40.0  # a sigmoid class 40 above zero with target 0: sigmoid rounds to 1
    grads = {}
    for name, fn in (("official", _official), ("acar_d2", pose_softmax_bce_loss)):
        x = logits.clone().requires_grad_()
        loss = fn(x, targets, POSE)
        loss.backward()
        grads[name] = (float(loss), x.grad)
    # the official loss caps each stuck element at 100 and gives it (almost) no gradient
    assert abs(float(grads["official"][1][0, 2])) < 1e-5 and grads["official"][1][1, 7] == 0
    # here: d loss / d z = (sigmoid(z) - y) / (R K) for the sigmoid class, and the softmax pushes the
    # wrong pose class down and the right one up
    assert abs(float(grads["acar_d2"][1][1, 7]) - 1 / 20) < 1e-6
    assert grads["acar_d2"][1][0, 2] > 0.04 and grads["acar_d2"][1][0, 0] < -0.04
    # each stuck element costs how far its logit overshot (40 here), not the official cap of 100
    assert grads["official"][0] > grads["acar_d2"][0] > 5.0


def test_no_regions_gives_zero_loss_with_a_graph():
    logits = torch.zeros(0, 10, requires_grad=True)
    loss = pose_softmax_bce_loss(logits, torch.zeros(0, 10), POSE)
    loss.backward()
    assert float(loss) == 0.0
