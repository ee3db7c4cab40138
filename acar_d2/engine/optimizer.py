"""
Optimizers beyond detectron2's SGD: AdamW with layer-wise LR decay, the VideoMAE fine-tuning
recipe (VideoMAE Sec. 4 / BEiT Sec. 2.6; official ``optim_factory.get_parameter_groups``).

``SOLVER.OPTIMIZER "AdamW"`` selects it in :meth:`acar_d2.engine.Trainer.build_optimizer`; "SGD"
keeps detectron2's ``build_optimizer``.
"""
from typing import Any, Dict, List, Optional

import torch
from detectron2.solver.build import maybe_add_gradient_clipping
from torch import nn

__all__ = ["OPTIMIZERS", "layer_id", "layer_decay_param_groups", "build_adamw_optimizer"]

OPTIMIZERS = ("SGD", "AdamW")


def layer_id(name: str, num_layers: int) -> int:
    """
    The depth of parameter ``name`` for the layer-wise LR decay (official ``get_num_layer_for_vit``):
    0 for the tubelet embedding (``backbone.patch_embed.*``), i + 1 for ``backbone.blocks.{i}.*``,
    ``num_layers + 1`` for everything after the blocks (the last norm, the heads).
    """
    if name.startswith("backbone.patch_embed."):
        return 0
    if name.startswith("backbone.blocks."):
        return int(name.split(".")[2]) + 1
    return num_layers + 1


def layer_decay_param_groups(
    model: nn.Module, *, base_lr: float, weight_decay: float, layer_decay: float,
    num_layers: Optional[int] = None,
) -> List[Dict[str, Any]]:
    """
    One parameter group per (depth, decayed or not): the LR of depth d is
    ``base_lr * layer_decay ** (num_layers + 1 - d)``; biases and 1-D tensors (norm scales, the
    attention q / v biases) get no weight decay, every other tensor ``weight_decay``.

    Args:
        model: the model (names as in ``named_parameters``; frozen parameters are left out).
        num_layers: number of transformer blocks; None = ``model.backbone.num_layers``, or 0 when
            the backbone has no blocks (no decay across depths).
    Returns:
        list[dict]: groups with ``params``, ``lr``, ``weight_decay`` and ``lr_scale`` (for logs).
    """
    if num_layers is None:
        num_layers = int(getattr(getattr(model, "backbone", None), "num_layers", 0))
    groups: Dict[tuple, Dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        depth = layer_id(name, num_layers)
        no_decay = p.ndim <= 1 or name.endswith(".bias")
        scale = layer_decay ** (num_layers + 1 - depth)
        group = groups.setdefault((depth, no_decay), {
            "params": [], "lr": base_lr * scale, "lr_scale": scale,
            "weight_decay": 0.0 if no_decay else weight_decay,
        })
        group["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def build_adamw_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """
    AdamW over :func:`layer_decay_param_groups` (``SOLVER.BASE_LR``, ``WEIGHT_DECAY``,
    ``LAYER_DECAY``, ``BETAS``), with detectron2's gradient clipping (``SOLVER.CLIP_GRADIENTS``).
    detectron2's LR schedulers scale each group's initial LR, so the decay survives warm-up and
    the cosine schedule.
    """
    s = cfg.SOLVER
    if len(s.BETAS) != 2:
        raise ValueError(f"SOLVER.BETAS must be two numbers, got {list(s.BETAS)}")
    groups = layer_decay_param_groups(
        model, base_lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY, layer_decay=s.LAYER_DECAY,
    )
    return maybe_add_gradient_clipping(cfg, torch.optim.AdamW)(
        groups, lr=s.BASE_LR, betas=tuple(s.BETAS), weight_decay=s.WEIGHT_DECAY,
    )
