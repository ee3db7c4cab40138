"""
Fixtures of the safety tests (docs/SAFETY.md): the engine tests' tiny synthetic world and
config, and a stand-in model with the top-level modules of ``ACARNet``.
"""
import torch

from ..engine.conftest import (  # noqa: F401  (fixtures and helpers shared with tests/engine)
    INSTANT_CONFIG,
    TRAIN,
    VAL,
    load_train_net,
    tiny_cfg,
    tiny_cfg_opts,
    tiny_world,
)


class StandIn(torch.nn.Module):
    """``backbone`` / ``roi_heads`` / optional ``person_detector``, as the keys of an ACARNet."""

    def __init__(self, head_width: int = 4, detector: bool = False):
        super().__init__()
        torch.manual_seed(head_width)
        self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
        self.roi_heads = torch.nn.Module()
        self.roi_heads.fc = torch.nn.Linear(head_width, 3)
        if detector:
            self.person_detector = torch.nn.Linear(2, 2)


def save_state(state: dict, path) -> str:
    """A detectron2-format file ``{"model": state}`` (what training / conversion write)."""
    torch.save({"model": {k: v.detach().clone() for k, v in state.items()}}, path)
    return str(path)
