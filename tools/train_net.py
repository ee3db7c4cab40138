#!/usr/bin/env python
"""
Train or evaluate ACAR-Net (and its baselines) with detectron2's engine.

Examples::

    # one process (CPU or one GPU)
    python tools/train_net.py --config-file configs/Synthetic/acar_SLOWFAST_R18_1.5k_aca_world.yaml OUTPUT_DIR output/acar_r18
    # 8 GPUs, continue the run in OUTPUT_DIR where it stopped
    python tools/train_net.py --num-gpus 8 --resume --config-file configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml
    # evaluate a checkpoint (detectron2 file, official ACAR-Net model-zoo file or PySlowFast file)
    python tools/train_net.py --eval-only --config-file configs/AVA/SLOWFAST_R50_ACAR_HR2O.yaml \
        MODEL.WEIGHTS model_zoo/AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar

``--num-gpus N`` starts N processes through detectron2's ``launch``; without CUDA they train on
the CPU with the gloo backend. ``--num-machines`` / ``--machine-rank`` / ``--dist-url`` work as in
detectron2.
"""
import json
import logging
import os

from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from acar_d2.engine import Trainer, setup_cfg

logger = logging.getLogger("acar_d2")


def setup(args):
    """
    Config from ``args`` (acar keys, the yaml with ``_BASE_``, command-line opts), then detectron2's
    ``default_setup`` (OUTPUT_DIR, ``config.yaml`` beside the outputs, the detectron2 logger) and
    the ``acar_d2`` logger (per-class AP tables, rows written / dropped) into the same ``log.txt``.
    """
    cfg = setup_cfg(args.config_file, args.opts)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="acar_d2", abbrev_name="acar")
    return cfg


def main(args):
    """Entry point run on every process: evaluate (``--eval-only``) or train, return the metrics."""
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        # --resume picks the last checkpoint of OUTPUT_DIR if there is one, else MODEL.WEIGHTS.
        Trainer.build_checkpointer(cfg, model).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
            _write_json(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), results)
        return results

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def _write_json(path, results):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    logger.info("Evaluation results written to %s", path)


def invoke_main() -> None:
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    invoke_main()  # pragma: no cover
