"""
Test helper (not a test): ``tools/train_net.py`` on the tiny engine-test world, optionally killed
with SIGKILL, together with its whole process group (launcher, ranks, data-loader workers), just
before training step ``--kill-before-iter`` starts: an interruption like ``kill -9``, at a known
point. Start it in its own session (``subprocess.run(..., start_new_session=True)``), or the kill
reaches the caller too.

    python tests/engine/sigkill_train.py --world WORLD [--kill-before-iter N] -- TRAIN_NET_ARGS...
"""
import argparse
import multiprocessing
import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from detectron2.engine import HookBase, launch  # noqa: E402
from detectron2.utils import comm  # noqa: E402

from acar_d2.engine import Trainer  # noqa: E402
from tests.engine.conftest import load_train_net, register_world  # noqa: E402


class KillProcessGroup(HookBase):
    """On rank 0, SIGKILL the process group before step ``iteration``."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def before_step(self):
        if self.trainer.iter == self.iteration and comm.is_main_process():
            os.killpg(0, signal.SIGKILL)


def main(world: str, kill_before_iter: int, args) -> None:
    """Runs on every rank: register the world (a spawned rank has a fresh catalog), then train."""
    # A rank started by launch (spawn) would also spawn its loader workers, each importing torch,
    # detectron2 and acar_d2 again (~10 s per run here); forked workers start at once. The draws
    # of a sample do not depend on how its worker started (acar_d2.data.sample_rng).
    multiprocessing.set_start_method("fork", force=True)
    register_world(Path(world), "engine_test_world")
    if kill_before_iter >= 0:
        build_hooks = Trainer.build_hooks
        Trainer.build_hooks = lambda self: build_hooks(self) + [KillProcessGroup(kill_before_iter)]
    load_train_net().main(args)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", required=True, help="folder of the synthetic world")
    parser.add_argument("--kill-before-iter", type=int, default=-1, help="-1: no kill")
    parser.add_argument("train_net_args", nargs=argparse.REMAINDER)
    ours = parser.parse_args()
    rest = ours.train_net_args[1:] if ours.train_net_args[:1] == ["--"] else ours.train_net_args
    args = load_train_net().argument_parser().parse_args(rest)
    launch(main, args.num_gpus, dist_url=args.dist_url,
           args=(ours.world, ours.kill_before_iter, args))


if __name__ == "__main__":
    cli()
