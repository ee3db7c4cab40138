"""
``Trainer``: detectron2's ``DefaultTrainer`` for clip-based action detection.

Same loop, hooks, writers (``metrics.json``, TensorBoard, a console line with ETA) and
``launch``-based multi-process training as detectron2; what changes:

* clip loaders (``ClipDatasetMapper``; training through a resumable sampler, testing through
  ``acar_d2.data.build_clip_test_loader``) and the ``AVAEvaluator`` (frame-mAP@0.5);
* ``ACARCheckpointer``, which also reads official ACAR-Net / PySlowFast files (``MODEL.WEIGHTS``);
* DistributedDataParallel without ``device_ids`` on CPU (gloo), where detectron2 would pass one;
* ``--resume`` continues the same stream exactly, with any ``DATALOADER.NUM_WORKERS`` and on every
  rank: the checkpoint additionally holds the sampler seed (and the RNG states), the training
  sampler skips the clips already consumed (``SOLVER.RESUME_DATA_POSITION``), each clip's random
  draws are seeded by its position in the stream, the step's own draws (dropout) continue each
  rank's generators, saved per rank in the checkpoint (``RankRNGStates``), and evaluation between
  steps leaves them untouched (``preserved_rng``); ``metrics.json`` keeps each iteration once;
* refusals (docs/SAFETY.md): weights that do not fit the model (``MODEL.WEIGHTS_STRICT``), a new
  run over a finished one (``SOLVER.OVERWRITE_OUTPUT_DIR``).

The optimizer and LR schedule are detectron2's (``SOLVER.OPTIMIZER "AdamW"``: AdamW with layer-wise
LR decay, the VideoMAE recipe, ``engine/optimizer.py``): SGD (``SOLVER.NESTEROV``) and
``WarmupMultiStepLR``, which with ``WARMUP_METHOD: linear`` ramps the LR linearly from
``BASE_LR * WARMUP_FACTOR`` to ``BASE_LR`` exactly like the official ACAR-Net ``StepLRScheduler``
ramps from ``base_lr`` to ``warmup_lr`` (see ``configs/Base-AVA.yaml`` for the numbers).
"""
import logging
import os
import weakref
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.engine import AMPTrainer, DefaultTrainer, HookBase, SimpleTrainer, TrainerBase
from detectron2.engine import hooks
from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators, inference_on_dataset
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint import ACARCheckpointer
from ..config import person_detector_config
from ..data.build import build_clip_mapper, build_clip_test_loader, build_clip_train_loader
from ..evaluation import AVAEvaluator
from ..evaluation.person_ap import PersonDetectionEvaluator
from .optimizer import OPTIMIZERS, build_adamw_optimizer
from .resume import (
    RankRNGStates,
    capture_rng_state,
    check_output_dir,
    drop_metrics_from,
    finished_run_files,
    preserved_rng,
    restore_rng_state,
    set_aside_previous_run,
)

__all__ = ["Trainer", "create_ddp_model"]

logger = logging.getLogger(__name__)


def create_ddp_model(model: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """
    Wrap ``model`` in DistributedDataParallel when more than one process runs.

    Unlike ``detectron2.engine.create_ddp_model``, a model on the CPU gets ``device_ids=None``
    (DDP rejects device ids for CPU modules), so the same code trains with gloo on CPUs.
    """
    if comm.get_world_size() == 1:
        return model
    on_cuda = next(model.parameters()).device.type == "cuda"
    if "device_ids" not in kwargs:
        kwargs["device_ids"] = [comm.get_local_rank()] if on_cuda else None
    return DistributedDataParallel(model, **kwargs)


def _has_person_detector(cfg: CfgNode) -> bool:
    return person_detector_config(cfg) is not None


class Trainer(DefaultTrainer):
    """
    Train / evaluate an ``ACARNet`` from a config (see ``tools/train_net.py``).

    Example::

        cfg = setup(args)                      # add_acar_config + merge_from_file
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
    """

    def __init__(self, cfg: CfgNode):
        # DefaultTrainer.__init__ is re-spelled (not called) to swap the checkpointer and the DDP
        # wrapper before the hooks that hold references to them are built.
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        self.cfg = cfg
        if cfg.SOLVER.AMP.ENABLED and not cfg.MODEL.DEVICE.startswith("cuda"):
            # detectron2's AMPTrainer is CUDA autocast + GradScaler (its state is checkpointed).
            raise ValueError(f"SOLVER.AMP.ENABLED needs MODEL.DEVICE cuda, got {cfg.MODEL.DEVICE}")

        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        # One shuffle seed shared by all ranks, remembered so that --resume replays the same stream.
        self.data_seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        data_loader = self.build_train_loader(cfg, seed=self.data_seed)

        model = create_ddp_model(model, broadcast_buffers=False)
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = self.build_checkpointer(
            cfg, model, purpose="train", trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self._pending_rng_states: Optional[List[Dict[str, Any]]] = None
        self._rank_rng_states = RankRNGStates(cfg.SOLVER.CHECKPOINT_PERIOD)
        self.register_hooks(self.build_hooks())

    # ---------------------------------------------------------------- builders
    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
        """``SOLVER.OPTIMIZER``: "SGD" (detectron2's) or "AdamW" (layer-wise LR decay, acar_d2/engine/optimizer.py)."""
        name = cfg.SOLVER.get("OPTIMIZER", "SGD")
        if name not in OPTIMIZERS:
            raise ValueError(f"SOLVER.OPTIMIZER must be one of {OPTIMIZERS}, got {name!r}")
        if name == "AdamW":
            return build_adamw_optimizer(cfg, model)
        return super().build_optimizer(cfg, model)

    @classmethod
    def build_checkpointer(
        cls, cfg: CfgNode, model: torch.nn.Module, purpose: str = "train", **checkpointables
    ):
        """
        ``ACARCheckpointer`` saving into ``cfg.OUTPUT_DIR`` (understands official files), with the
        config's loading rules (``ACARCheckpointer.from_config``): ``purpose`` "train" accepts a
        file without any head / detector tensors (they are new), "eval" needs every tensor.
        """
        return ACARCheckpointer.from_config(
            model, cfg, cfg.OUTPUT_DIR, purpose=purpose, **checkpointables
        )

    @classmethod
    def build_train_loader(cls, cfg: CfgNode, *, seed: Optional[int] = None, start_iter: int = 0):
        """
        Clip training loader: an infinite stream of batches, each a list of
        ``IMS_PER_BATCH // world_size`` model-input dicts (ARCHITECTURE.md, "Mapper output").

        Args:
            seed (int or None): shuffle seed of the sampler (None: ``cfg.SEED`` if >= 0, else a
                random seed shared by the ranks).
            start_iter (int): iterations already trained; this rank's first
                ``start_iter * per-rank batch`` clips are skipped.
        """
        return build_clip_train_loader(cfg, seed=seed, start_iter=start_iter)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        """Clip test loader of ``dataset_name``: batches of one clip, every key frame once."""
        return build_clip_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(
        cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None
    ) -> DatasetEvaluator:
        """
        The frame-mAP@0.5 evaluator of ``dataset_name``'s ``evaluator_type`` metadata ("ava" for
        AVA and the synthetic world, "ucf24" for UCF101-24: both are ``AVAEvaluator``), writing
        its detections CSV under ``OUTPUT_DIR/inference/<dataset>``.
        """
        evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", "ava")
        if evaluator_type not in ("ava", "ucf24"):
            raise ValueError(f"no evaluator for evaluator_type '{evaluator_type}' of '{dataset_name}'")
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        evaluator = AVAEvaluator(dataset_name, output_dir=output_folder)
        if _has_person_detector(cfg):
            # Same model, same pass: person AP@0.5 of the actor boxes + frame-mAP with them.
            return DatasetEvaluators([evaluator, PersonDetectionEvaluator(dataset_name)])
        return evaluator

    @classmethod
    def test(cls, cfg: CfgNode, model, evaluators=None):
        """
        detectron2's ``DefaultTrainer.test``; with a person detector, each test set is then run a
        second time with the ground-truth boxes as actor boxes (mapper ``proposals_from_gt``), and
        that frame-mAP (the upper bound of the detected-box one) is reported under the key
        ``"<task>_gt_boxes"`` (e.g. ``ava_gt_boxes``) beside ``person_detection`` and the task's own.
        """
        results = super().test(cfg, model, evaluators)
        if evaluators is not None or not _has_person_detector(cfg):
            return results
        single = len(cfg.DATASETS.TEST) == 1
        for name in cfg.DATASETS.TEST:
            mapper = build_clip_mapper(cfg, False, dataset_name=name, proposals_from_gt=True)
            loader = build_clip_test_loader(cfg, name, mapper=mapper)
            folder = os.path.join(cfg.OUTPUT_DIR, "inference", name + "_gt_boxes")
            evaluator = AVAEvaluator(name, output_dir=folder)
            gt_res = inference_on_dataset(model, loader, evaluator)
            target = results if single else results[name]
            if comm.is_main_process():
                for task, res in gt_res.items():
                    target[f"{task}_gt_boxes"] = res
                logger.info("Frame-mAP with ground-truth boxes on %s: %s", name,
                            {t: r.get("frame_mAP@0.5") for t, r in gt_res.items()})
        return results

    def build_hooks(self) -> List[HookBase]:
        """
        detectron2's default hooks minus PreciseBN: iteration timer, LR scheduler, periodic
        checkpointer (main process; preceded on every rank by ``RankRNGStates``, which gathers
        the ranks' generator states for it), evaluation every ``TEST.EVAL_PERIOD`` and at the end
        (drawing nothing from the training generators), and the console / ``metrics.json`` /
        TensorBoard writers every ``SOLVER.LOG_PERIOD`` iterations.
        """
        cfg = self.cfg
        # PreciseBN would recompute BN statistics that the recipe keeps frozen (ACAR-Net trains
        # with frozen BN, "freeze_bn: True" in every official config), so it is refused.
        if cfg.TEST.PRECISE_BN.ENABLED:
            raise ValueError("TEST.PRECISE_BN.ENABLED is not supported: the backbone BN is frozen")
        ret: List[HookBase] = [hooks.IterationTimer(), hooks.LRScheduler()]
        if cfg.SOLVER.CHECKPOINT_RNG_STATE:
            ret.append(self._rank_rng_states)
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))

        def test_and_save_results():
            with preserved_rng():
                self._last_eval_results = self.test(self.cfg, self.model)
            return self._last_eval_results

        # After the checkpointer, so that a failing evaluation leaves the weights on disk.
        ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, test_and_save_results))
        if comm.is_main_process():
            # Last, so that the evaluation metrics of this iteration are written too.
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=cfg.SOLVER.LOG_PERIOD))
        return ret

    def build_writers(self) -> List[EventWriter]:
        """
        Console line (losses, LR, ETA), ``metrics.json`` and TensorBoard, each smoothing over the
        ``SOLVER.LOG_PERIOD`` iterations since its last write (so LOG_PERIOD 1 records every
        iteration's own values).
        """
        window = max(1, self.cfg.SOLVER.LOG_PERIOD)
        # tools/train_net.py's default_setup creates OUTPUT_DIR; a Trainer built elsewhere may not.
        os.makedirs(self.cfg.OUTPUT_DIR, exist_ok=True)
        return [
            CommonMetricPrinter(self.max_iter, window_size=window),
            JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), window_size=window),
            TensorboardXWriter(self.cfg.OUTPUT_DIR, window_size=window),
        ]

    # ---------------------------------------------------------------- resume
    def state_dict(self) -> Dict[str, Any]:
        ret = super().state_dict()
        ret["data_seed"] = self.data_seed
        if self.cfg.SOLVER.CHECKPOINT_RNG_STATE:
            ret["rng_states"] = self._rng_states_to_save()
        return ret

    def _rng_states_to_save(self) -> List[Dict[str, Any]]:
        """Every rank's generator states (index = rank): gathered after this step by
        ``RankRNGStates`` in a multi-process run, read now in a single process. A checkpoint saved
        at another moment of a multi-process run holds this rank's states only."""
        gathered = self._rank_rng_states
        if comm.get_world_size() > 1 and gathered.iteration == self.iter and gathered.states:
            return list(gathered.states)
        return [capture_rng_state()]

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.data_seed = state_dict.get("data_seed", self.data_seed)
        # Applied at the end of resume_or_load: rebuilding the loader and creating its iterator
        # draw from the torch RNG, and the restored stream must start after those draws.
        states = state_dict.get("rng_states")
        if states is None and state_dict.get("rng_state") is not None:
            states = [state_dict["rng_state"]]  # checkpoints holding rank 0's states only
        self._pending_rng_states = states

    def resume_or_load(self, resume: bool = True) -> None:
        """
        ``resume=True`` and a ``last_checkpoint`` in ``OUTPUT_DIR``: continue that run (weights,
        optimizer, scheduler, iteration, and where enabled the data position and RNG states);
        the ``metrics.json`` lines of the iterations run again are moved to
        ``metrics.dropped.json``. Otherwise load ``MODEL.WEIGHTS`` (any format
        ``ACARCheckpointer`` reads; ``MODEL.WEIGHTS_STRICT`` rules) and start at 0, refusing an
        ``OUTPUT_DIR`` that holds another run unless ``SOLVER.OVERWRITE_OUTPUT_DIR``.
        """
        out, overwrite = self.cfg.OUTPUT_DIR, self.cfg.SOLVER.get("OVERWRITE_OUTPUT_DIR", False)
        check_output_dir(out, resume=resume, overwrite=overwrite)
        starts_fresh = not (resume and self.checkpointer.has_checkpoint())
        if starts_fresh and overwrite and comm.is_main_process() and finished_run_files(out):
            aside = set_aside_previous_run(out)
            logger.warning("OUTPUT_DIR %s: overwriting the previous run (SOLVER.OVERWRITE_OUTPUT_DIR)"
                           "%s", out, f"; its metrics.json copied to {aside}" if aside else "")
        super().resume_or_load(resume=resume)
        if self.start_iter == 0:
            return
        if comm.is_main_process():
            dropped = drop_metrics_from(out, self.start_iter)
            if dropped:
                logger.info("metrics.json: %d line(s) of iterations >= %d (run again now) moved to "
                            "metrics.dropped.json", dropped, self.start_iter)
        if self.cfg.SOLVER.RESUME_DATA_POSITION:
            self._trainer.reset_data_loader(
                lambda: self.build_train_loader(
                    self.cfg, seed=self.data_seed, start_iter=self.start_iter
                )
            )
        # Create the iterator now so that its seed draw happens before the RNG restore.
        self._trainer._data_loader_iter
        if self._pending_rng_states and self.cfg.SOLVER.CHECKPOINT_RNG_STATE:
            self._restore_rank_rng_states(self._pending_rng_states)
        self._pending_rng_states = None

    def _restore_rank_rng_states(self, states: List[Dict[str, Any]]) -> None:
        """Give this rank its own saved generator states; where the checkpoint holds another
        number of ranks, every rank starts from rank 0's and forks a distinct stream from it."""
        rank, world = comm.get_rank(), comm.get_world_size()
        if len(states) == world:
            restore_rng_state(states[rank])
            logger.info("Restored RNG states of iteration %d (rank %d)", self.start_iter - 1, rank)
            return
        restore_rng_state(states[0])
        if world > 1:
            seed_all_rng(int(np.random.randint(2**31 - 1)) + rank)
        logger.warning("The checkpoint holds the RNG states of %d rank(s), this run has %d: the step "
                       "draws (dropout) continue from rank 0's, not exactly", len(states), world)
