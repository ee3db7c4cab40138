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

Refused unless asked (docs/SAFETY.md): weights that leave a model tensor unloaded or mismatched
(``MODEL.WEIGHTS_STRICT False``), a new run into an OUTPUT_DIR holding another one without
``--resume`` (``--overwrite``), pickled objects that could run code (``--allow-unsafe-pickle``), a second job on an OUTPUT_DIR in use (the main process holds
``OUTPUT_DIR/.acar_d2.lock`` for the whole run). Bad input ends as one line and exit status 2
(``--debug``: the traceback).

``--num-gpus N`` starts N processes through detectron2's ``launch``; without CUDA they train on
the CPU with the gloo backend. ``--num-machines`` / ``--machine-rank`` / ``--dist-url`` work as in
detectron2.
"""
import json
import logging
import os
from contextlib import nullcontext

from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from acar_d2.checkpoint import ALLOW_UNSAFE_ENV
from acar_d2.data.datasets import validate_config_datasets
from acar_d2.engine import Trainer, setup_cfg
from acar_d2.engine.resume import check_output_dir
from acar_d2.engine.cli import add_debug_flag, run_cli
from acar_d2.modeling.inference import inference_options, prepare_for_inference
from acar_d2.utils.output_lock import hold_output_folder

logger = logging.getLogger("acar_d2")


def argument_parser():
    """detectron2's ``default_argument_parser`` plus the safety overrides (docs/SAFETY.md)."""
    parser = default_argument_parser()
    parser.add_argument(
        "--overwrite", action="store_true",
        help="train into an OUTPUT_DIR that holds another run (model_final.pth / last_checkpoint) "
             "without --resume, replacing it (= SOLVER.OVERWRITE_OUTPUT_DIR True)",
    )
    parser.add_argument(
        "--allow-unsafe-pickle", action="store_true",
        help="allow checkpoints / pickles holding arbitrary objects: loading them can RUN CODE "
             "from the file; only for files from a trusted source (= MODEL.ALLOW_UNSAFE_PICKLE "
             f"True and {ALLOW_UNSAFE_ENV}=1)",
    )
    add_debug_flag(parser)
    return parser


def config_from_args(args):
    """Config from ``args``: acar keys, the yaml with ``_BASE_``, command-line opts, the safety
    flags."""
    opts = list(args.opts)
    if getattr(args, "overwrite", False):
        opts += ["SOLVER.OVERWRITE_OUTPUT_DIR", "True"]
    if getattr(args, "allow_unsafe_pickle", False):
        opts += ["MODEL.ALLOW_UNSAFE_PICKLE", "True"]
        os.environ[ALLOW_UNSAFE_ENV] = "1"  # also for proposal / annotation pickles
    return setup_cfg(args.config_file, opts)


def setup(args, cfg=None):
    """
    Config from ``args`` (:func:`config_from_args`, unless given), the check that a training run
    does not replace another one in ``OUTPUT_DIR`` (before anything is written there), then
    detectron2's ``default_setup`` (OUTPUT_DIR, ``config.yaml`` beside the outputs, the
    detectron2 logger) and the ``acar_d2`` logger (per-class AP tables, rows written / dropped)
    into the same ``log.txt``; then the ``DATASETS.CUSTOM`` splits the run uses are validated
    (an error-level problem stops it, naming file and line).
    """
    cfg = cfg if cfg is not None else config_from_args(args)
    if not args.eval_only:
        check_output_dir(cfg.OUTPUT_DIR, resume=args.resume,
                         overwrite=cfg.SOLVER.OVERWRITE_OUTPUT_DIR)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="acar_d2", abbrev_name="acar")
    split = (list(cfg.DATASETS.TRAIN) or list(cfg.DATASETS.TEST) or ["no dataset"])[0]
    logger.info(f"MODEL.ACTION_HEAD.NUM_CLASSES {cfg.MODEL.ACTION_HEAD.NUM_CLASSES}, "
                f"POSE_CLASS_INDICES {list(cfg.MODEL.ACTION_HEAD.POSE_CLASS_INDICES)}, "
                f"INPUT.CLIP.SOURCE {cfg.INPUT.CLIP.SOURCE!r} (where the config says 0 / [] / '': "
                f"from {split})")
    if comm.is_main_process():
        # the DATASETS.CUSTOM splits the run uses pass tools/validate_dataset.py's checks first
        validate_config_datasets(cfg)
    return cfg


def main(args):
    """
    Entry point run on every process: evaluate (``--eval-only``) or train, return the metrics.
    The main process holds ``OUTPUT_DIR``'s lock from before the check of its contents to the
    end: a second job on the same folder is refused at once (``OutputLockedError``).
    """
    cfg = config_from_args(args)
    with hold_output_folder(cfg.OUTPUT_DIR) if comm.is_main_process() else nullcontext():
        return run(args, setup(args, cfg))


def run(args, cfg):
    """Evaluate or train with the config :func:`setup` made."""
    if args.eval_only:
        model = Trainer.build_model(cfg)
        # --resume picks the last checkpoint of OUTPUT_DIR if there is one, else MODEL.WEIGHTS;
        # every model tensor must come from the file (MODEL.WEIGHTS_STRICT).
        Trainer.build_checkpointer(cfg, model, purpose="eval").resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        # The inference path's model, as ActionPredictor's (MODEL.INFERENCE: BN folded,
        # channels-last convolutions, precision); the periodic evaluation while training keeps
        # the training model.
        prepare_for_inference(model, **inference_options(cfg))
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


def invoke_main(argv=None) -> None:
    args = argument_parser().parse_args(argv)
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
    run_cli(invoke_main, prog="tools/train_net.py")  # pragma: no cover
