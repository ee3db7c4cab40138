"""
Pose-softmax binary cross-entropy, the action loss of ACAR-Net.

AVA's pose classes (stand, sit, walk, ...) are mutually exclusive, so ACAR-Net (Sec. 4.1, and the
official ``ava_criterion`` with ``pose_softmax: True``) turns their logits into probabilities with
one softmax, while every other class keeps an independent sigmoid. The binary cross-entropy is then
taken on these probabilities (not on logits) and averaged over R regions x K classes.

With several processes the official step scales each process's mean by (boxes here / boxes on all
processes) x processes (:func:`global_box_weight`), so that the gradient DistributedDataParallel
averages is that of the mean over every box of the global batch, not the mean of per-process means
(AVA clips hold 1 to 20+ actors, so processes always hold different box counts).
"""
from typing import Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from detectron2.utils import comm

__all__ = [
    "action_log_probabilities",
    "action_probabilities",
    "global_box_weight",
    "pose_softmax_bce_loss",
]


def action_probabilities(logits: torch.Tensor, pose_class_indices: Sequence[int]) -> torch.Tensor:
    """
    Turn action logits into per-class probabilities.

    Args:
        logits (Tensor): (R, K) action logits.
        pose_class_indices (Sequence[int]): indices into the K classes that share one softmax;
            empty means a sigmoid for every class.

    Returns:
        Tensor: (R, K) probabilities clamped to [0, 1] (the official code clamps as well, which
        guards the BCE against softmax/sigmoid round-off just above 1).
    """
    if logits.dim() != 2:
        raise ValueError(f"action logits must be (R, K), got shape {tuple(logits.shape)}")
    probs = torch.sigmoid(logits)
    if len(pose_class_indices) > 0:
        num_classes = logits.shape[1]
        bad = [i for i in pose_class_indices if not 0 <= int(i) < num_classes]
        if bad:
            raise ValueError(f"pose_class_indices {bad} out of range for K={num_classes} classes")
        index = torch.as_tensor(list(pose_class_indices), dtype=torch.long, device=logits.device)
        # index_copy keeps autograd through both activations without in-place edits of `probs`.
        pose_probs = F.softmax(logits.index_select(1, index), dim=1)
        probs = probs.index_copy(1, index, pose_probs)
    return probs.clamp(0.0, 1.0)


def action_log_probabilities(
    logits: torch.Tensor, pose_class_indices: Sequence[int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    ``log p`` and ``log(1 - p)`` of :func:`action_probabilities`, computed from the logits.

    Sigmoid classes: ``logsigmoid(z)`` and ``logsigmoid(-z)``. Pose classes (one softmax):
    ``log_softmax(z)_i`` and ``logsumexp_{j != i} z_j - logsumexp_j z_j``. Both stay finite and
    keep a gradient where float32 probabilities round to exactly 0 or 1 (a sigmoid logit beyond
    ~17, a pose logit ~17 above the others).

    Args:
        logits (Tensor): (R, K).
        pose_class_indices (Sequence[int]): as in :func:`action_probabilities`.
    Returns:
        tuple[Tensor, Tensor]: (R, K) ``log p`` and (R, K) ``log(1 - p)``.
    """
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    if len(pose_class_indices) > 0:
        index = torch.as_tensor(list(pose_class_indices), dtype=torch.long, device=logits.device)
        pose = logits.index_select(1, index)  # (R, P)
        total = torch.logsumexp(pose, dim=1, keepdim=True)
        P = pose.shape[1]
        eye = torch.eye(P, dtype=torch.bool, device=logits.device)
        others = pose.unsqueeze(1).expand(-1, P, -1).masked_fill(eye, float("-inf"))  # (R, P, P)
        log_p = log_p.index_copy(1, index, pose - total)
        log_not_p = log_not_p.index_copy(1, index, torch.logsumexp(others, dim=2) - total)
    return log_p, log_not_p


def pose_softmax_bce_loss(
    logits: torch.Tensor, gt_actions: torch.Tensor, pose_class_indices: Sequence[int]
) -> torch.Tensor:
    """
    Mean binary cross-entropy of :func:`action_probabilities` against multi-hot targets.

    The official criterion applies ``F.binary_cross_entropy`` to the probabilities; here the same
    sum ``-(y log p + (1 - y) log(1 - p))`` is taken on :func:`action_log_probabilities`, equal
    to float32 round-off while the probabilities are not saturated (checked against the official
    forward and training steps, tests/test_model_parity.py and tests/engine/
    test_training_parity.py). Where a probability rounds to exactly 1 on the wrong side, the
    official loss is capped at 100 per element with a zero gradient, so a prediction that has
    overshot can never be pulled back (a diverged synthetic run sat there, README "Training
    stability"); here the gradient stays (sigmoid(z) - y). Log terms are capped at -100 like
    ``F.binary_cross_entropy``'s, which only a one-class pose group can reach.

    Args:
        logits (Tensor): (R, K) action logits.
        gt_actions (Tensor): (R, K) multi-hot float targets in {0, 1}.
        pose_class_indices (Sequence[int]): see :func:`action_probabilities`.

    Returns:
        Tensor: scalar, mean over R x K. With R = 0 it is ``0 * logits.sum()`` so that a batch
        without regions still back-propagates (into nothing) instead of producing NaN.
    """
    if gt_actions.shape != logits.shape:
        raise ValueError(
            f"gt_actions shape {tuple(gt_actions.shape)} != logits shape {tuple(logits.shape)}"
        )
    if logits.numel() == 0:
        return logits.sum() * 0.0
    if len(pose_class_indices) > 0:
        action_probabilities(logits[:0], pose_class_indices)  # same index checks
    log_p, log_not_p = action_log_probabilities(logits, pose_class_indices)
    y = gt_actions.to(logits.dtype)
    return -(y * log_p.clamp(min=-100.0) + (1 - y) * log_not_p.clamp(min=-100.0)).mean()


def global_box_weight(num_boxes: int, device: torch.device) -> float:
    """
    The factor that turns this process's mean loss into its share of the global-batch mean.

    ``num_boxes / total * world_size`` with ``total`` the boxes of all processes (one all-reduce of
    a single number; every process must call it once per step). DistributedDataParallel averages
    the gradients of the processes, so the result is the gradient of
    ``sum over all boxes / total``. Exactly 1.0 with one process (no communication).

    Args:
        num_boxes (int): R, the boxes of this process's batch.
        device (torch.device): where the count tensor lives (the loss's device: gloo reduces CPU
            tensors, NCCL CUDA ones).
    Returns:
        float: the weight (1.0 when no process has a box: every loss is then zero).
    """
    world_size = comm.get_world_size()
    if world_size == 1:
        return 1.0
    count = torch.tensor([float(num_boxes)], dtype=torch.float64, device=device)
    dist.all_reduce(count)
    total = float(count.item())
    return num_boxes * world_size / total if total > 0 else 1.0
