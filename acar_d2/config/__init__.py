"""
Config keys added by acar_d2 to a detectron2 ``get_cfg()``.

``add_acar_config(cfg)`` composes the small ``add_*_config`` helpers below (like DensePose's
config.py). Every key carries a comment; constants taken from the ACAR-Net paper
(Pan et al., CVPR 2021, arXiv:2006.07976) or the SlowFast paper (Feichtenhofer et al., ICCV 2019)
cite the section they come from. Derived numbers (channel widths of the backbone outputs) are
never config keys: they come from ``Backbone.output_shape()``. The person detector's own detectron2
config is read by :mod:`acar_d2.config.detector`; which feature bank a model reads (its head's
kind against ``MODEL.FEATURE_BANK.KIND``) by :mod:`acar_d2.config.bank_kind`.
"""
import logging
from pathlib import Path

import torch
from detectron2.config import CfgNode as CN

__all__ = ["add_acar_config", "config_root", "load_detector_config",
           "resolve_detector_config_file", "person_detector_config", "bank_kind_of",
           "bank_kind_from_config", "resolve_bank_kind"]

from .bank_kind import bank_kind_from_config, bank_kind_of, resolve_bank_kind  # noqa: E402
from .feature_bank import add_feature_bank_config  # noqa: E402

from .detector import (  # noqa: E402  (the person detector's own config: detector.py)
    load_detector_config,
    person_detector_config,
    resolve_detector_config_file,
)

logger = logging.getLogger(__name__)
_REPO = Path(__file__).resolve().parents[2]
# The yaml configs ship inside the package, as detectron2 ships detectron2/model_zoo/configs:
# setup.py links (or copies) the repository's configs/ to acar_d2/model_zoo/configs, and the wheel
# holds them there. A checkout that was never built or installed reads configs/ beside the package.
_PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / "model_zoo" / "configs"


def config_root() -> Path:
    """The folder of the acar_d2 yaml configs (``configs/`` of the repository): the copy inside
    the package when there is one (an installed wheel, a built checkout), else the repository's."""
    if _PACKAGED_CONFIGS.is_dir():
        return _PACKAGED_CONFIGS.resolve()
    return _REPO / "configs"


def add_clip_input_config(cfg: CN) -> None:
    """Keys for reading, augmenting and normalizing video clips (``cfg.INPUT.CLIP``)."""
    _C = cfg
    _C.INPUT.CLIP = CN()
    # Number of frames T fed to the fast pathway. ACAR-Net / SlowFast 8x8 on AVA: 32 frames
    # (ACAR paper Sec. 4.1 "Implementation details"; SlowFast paper Sec. 5 "AVA").
    _C.INPUT.CLIP.NUM_FRAMES = 32
    # Temporal stride between sampled frames, in frames at INPUT.CLIP.FPS (30 fps: 32 x 2 = 64
    # frames ~ 2.1 s centred on the key frame).
    _C.INPUT.CLIP.SAMPLING_RATE = 2
    # The frame rate SAMPLING_RATE is counted at: the model's own seconds. Clip frame k of key time
    # t is the source frame on screen at t + (k * SAMPLING_RATE - NUM_FRAMES * SAMPLING_RATE // 2)
    # / FPS seconds, whatever the source's rate (25 / 60 fps, variable-rate phone videos, frame
    # folders at another rate): acar_d2/data/video_io/timing.py. AVA / AVA-Kinetics: 30 (the
    # official frames are extracted at 30 fps). 0 = the frame rate of the training split (its
    # metadata "fps"; each dataset dict's own "fps" when reading a split), as configs written
    # before this key behave.
    _C.INPUT.CLIP.FPS = 0.0
    # Resize so that the shorter side equals this (official pipeline: 256).
    _C.INPUT.CLIP.SHORT_SIDE = 256
    # Longer side at most this (shorter side shrinks; official VideoMAE: 464); 0 = no limit.
    _C.INPUT.CLIP.MAX_SIZE = 0
    # Zero-pad the longer side so the clip becomes square (official training recipe); the unpadded
    # size is recorded as "valid_size" so the head only uses the valid context region.
    _C.INPUT.CLIP.PAD_TO_SQUARE = True
    # Box jitter at training time: each coordinate moves uniformly within +-JITTER of the box
    # width (x) / height (y) (official neck: bbox_jitter.scale 0.075).
    _C.INPUT.CLIP.BOX_JITTER = 0.075
    # Horizontal flip probability at training time.
    _C.INPUT.CLIP.FLIP_PROB = 0.5
    # Raw 0..255 pixel values are divided by VALUE_SCALE before (x - mean) / std.
    # Official R50 models: 255 with mean 0.45 / std 0.225; R101 models: 1 with per-channel
    # 0..255 statistics (see configs/AVA/*R101*.yaml). Channel order is RGB.
    _C.INPUT.CLIP.VALUE_SCALE = 255.0
    _C.INPUT.CLIP.PIXEL_MEAN = [0.45, 0.45, 0.45]
    _C.INPUT.CLIP.PIXEL_STD = [0.225, 0.225, 0.225]
    # Where clips are read from: "frames" (folders of JPEG frames) or "video" (decode the video file
    # with PyAV, seeking to the needed span). "" = what the training split has: "frames" when it
    # has frame folders (or no registered split tells), else "video" (resolved by setup_cfg,
    # acar_d2/data/dataset_keys.py; a split lacking the source set here is an error naming this key).
    _C.INPUT.CLIP.SOURCE = ""


def add_data_config(cfg: CN) -> None:
    """Keys of reading the action datasets (``cfg.DATASETS.ACTION``)."""
    _C = cfg
    _C.DATASETS.ACTION = CN()
    # Threads used by one clip reader to decode the JPEG frames of a clip (0 = decode serially);
    # decoding releases the GIL, so threads help inside each DataLoader worker.
    _C.DATASETS.ACTION.READER_THREADS = 0
    # Class subset of the splits of DATASETS.TRAIN / TEST: label-map names or ids (e.g. ["stand",
    # "sit"] or [3, 6]); the kept classes, in label-map order, are the model's K classes
    # (MODEL.ACTION_HEAD.NUM_CLASSES K) with their original ids in the metadata and the outputs
    # (acar_d2/data/class_subset.py, docs/CUSTOM_DATA.md "Class subsets"). [] = every class.
    _C.DATASETS.CLASSES = []


def add_slowfast_config(cfg: CN) -> None:
    """Keys of the SlowFast video backbone (``cfg.MODEL.SLOWFAST``)."""
    _C = cfg
    _C.MODEL.SLOWFAST = CN()
    # ResNet depth of both pathways: 50 (3,4,6,3 bottlenecks), 101 (3,4,23,3) or 18 (2,2,2,2
    # bottlenecks, not basic blocks: same block type and output widths, for CPU-sized runs).
    _C.MODEL.SLOWFAST.DEPTH = 50
    # Width of the slow pathway stem (64 in the paper); the stage widths scale with it, so a small
    # value (e.g. 8) gives a tiny model with the same topology for tests and CPU runs.
    _C.MODEL.SLOWFAST.WIDTH = 64
    # Frame-rate ratio alpha between the fast and the slow pathway (SlowFast Sec. 3.1; ACAR: 4).
    _C.MODEL.SLOWFAST.ALPHA = 4
    # Channel ratio 1/beta of the fast pathway (SlowFast Sec. 3.2: beta = 1/8).
    _C.MODEL.SLOWFAST.BETA_INV = 8
    # Output channels of the fast->slow lateral convolution relative to the fast width
    # (SlowFast Sec. 3.3 "time-strided convolution", 2 * beta * C).
    _C.MODEL.SLOWFAST.FUSION_CONV_CHANNEL_RATIO = 2
    # Temporal kernel size of the lateral connection (official R50: 7, R101: 5).
    _C.MODEL.SLOWFAST.FUSION_KERNEL_SIZE = 7
    # Lateral connection is a bare convolution (official R101) instead of conv + BN + ReLU (R50).
    _C.MODEL.SLOWFAST.FUSION_ONLY_CONV = False
    # Slow frames are picked with linspace(0, T-1, T/alpha) over the whole clip (official R50 and
    # PySlowFast's loader) instead of every alpha-th frame (official R101).
    _C.MODEL.SLOWFAST.SLOW_FULL_SPAN = True
    # res5 spatial dilation; > 1 means res5 keeps stride 1 (ACAR Sec. 4.1 doubles the res5
    # resolution, as PySlowFast's AVA configs: stride 16 output).
    _C.MODEL.SLOWFAST.RES5_DILATION = 2
    # res5 spatial stride: 0 = as RES5_DILATION implies (1 when dilated, else 2); 1 with
    # RES5_DILATION 1 keeps the stride-16 map at a smaller receptive field (the relation
    # benchmark's backbone, datasets/SYNTHETIC.md).
    _C.MODEL.SLOWFAST.RES5_STRIDE = 0
    # Non-local blocks (R101+NL variant): for each ResNet stage res2..res5 the block indices after
    # which a non-local block is inserted in the slow pathway, e.g. [[], [1, 3], [1, 3, 5], []].
    _C.MODEL.SLOWFAST.NONLOCAL_LOCATIONS = [[], [], [], []]
    # Max-pool (T, H, W) sub-sampling of the non-local keys/values (non-local paper Sec. 3.3).
    _C.MODEL.SLOWFAST.NONLOCAL_POOL = [1, 2, 2]
    # Non-local pairwise function: "softmax" (embedded Gaussian, non-local paper Eq. 3) or
    # "dot_product" (Eq. 4, used by PySlowFast's AVA R101+NL configs).
    _C.MODEL.SLOWFAST.NONLOCAL_INSTANTIATION = "softmax"
    # Per stage res2..res5, how many leading blocks keep the temporal kernel of conv1 (SlowFast
    # Table 1), the others use 1; [] = every block. PySlowFast's R101 "50_50" AVA models keep the
    # R50 counts [3, 4, 6, 3] (its RESNET.NUM_BLOCK_TEMP_KERNEL).
    _C.MODEL.SLOWFAST.NUM_BLOCK_TEMP_KERNEL = []
    # Backbone norm (acar_d2/modeling/backbone/norm.py):
    # "FrozenStatsBN": stored statistics that never change, trainable scale / shift: the official
    #   ACAR-Net "freeze_bn: True" (every backbone BN in eval mode inside a training model) and
    #   PySlowFast's BN.FREEZE;
    # "FrozenBN": detectron2's FrozenBatchNorm, statistics and scale / shift all fixed;
    # "BN": nn.BatchNorm3d, batch statistics in training.
    _C.MODEL.SLOWFAST.NORM = "FrozenStatsBN"
    # The boolean of earlier versions is refused with a pointer, not silently read as a NORM.
    _C.register_renamed_key(
        "MODEL.SLOWFAST.FROZEN_BN", "MODEL.SLOWFAST.NORM",
        message='FROZEN_BN True was detectron2\'s fully frozen BN, now NORM "FrozenBN"; the official '
                'ACAR-Net freeze_bn (trainable scale / shift) is NORM "FrozenStatsBN" (the default)',
    )
    # Names of the features returned by the backbone.
    _C.MODEL.SLOWFAST.OUT_FEATURES = ["slow", "fast"]


def add_videomae_config(cfg: CN) -> None:
    """Keys of the VideoMAE ViT backbone (``cfg.MODEL.VIDEOMAE``) and of its AdamW recipe."""
    _C = cfg
    _C.MODEL.VIDEOMAE = CN()
    # Width, blocks, heads (VideoMAE ViT-S 384/12/6, B 768/12/12, L 1024/24/16, H 1280/32/16).
    _C.MODEL.VIDEOMAE.EMBED_DIM = 768
    _C.MODEL.VIDEOMAE.DEPTH = 12
    _C.MODEL.VIDEOMAE.NUM_HEADS = 12
    _C.MODEL.VIDEOMAE.MLP_RATIO = 4.0
    # Tubelet 2 x 16 x 16 (VideoMAE Sec. 3.3): stride 16, INPUT.CLIP.NUM_FRAMES / 2 time cells.
    _C.MODEL.VIDEOMAE.PATCH_SIZE = 16
    _C.MODEL.VIDEOMAE.TUBELET_SIZE = 2
    # The fixed sine table is made for this square input (224: 14 x 14) and resized to the clip's.
    _C.MODEL.VIDEOMAE.PRETRAIN_IMG_SIZE = 224
    # Stochastic depth of the last block, linear from 0 (official AVA fine-tuning: 0.2).
    _C.MODEL.VIDEOMAE.DROP_PATH_RATE = 0.0
    # Recompute blocks in the backward pass (activation memory; official ViT-L/H: on).
    _C.MODEL.VIDEOMAE.USE_CHECKPOINT = False
    # Name of the returned map (what MODEL.ROI_HEADS.IN_FEATURES lists).
    _C.MODEL.VIDEOMAE.OUT_FEATURE = "vit"
    # "SGD" (detectron2's, the ACAR recipe) or "AdamW" (VideoMAE: no weight decay on biases and 1-D
    # tensors, layer-wise LR decay; acar_d2/engine/optimizer.py) with these betas.
    _C.SOLVER.OPTIMIZER = "SGD"
    _C.SOLVER.BETAS = (0.9, 0.999)
    # AdamW only (BEiT Sec. 2.6): block i of L gets LAYER_DECAY^(L - i) x the LR, the tubelet
    # embedding LAYER_DECAY^(L + 1), the rest 1 (official ViT-B: 0.75). 1.0 = off.
    _C.SOLVER.LAYER_DECAY = 1.0


def add_action_head_config(cfg: CN) -> None:
    """Keys of the action ROI heads (``cfg.MODEL.ACTION_HEAD``)."""
    _C = cfg
    _C.MODEL.ACTION_HEAD = CN()
    # Number of action classes K (AVA: 60 evaluated classes). 0 = the number of classes in the label
    # map of the training split (DATASETS.TRAIN[0], else DATASETS.TEST[0]), resolved by setup_cfg
    # (acar_d2/data/dataset_keys.py) and written to the run's config.yaml; a value that differs
    # from the split's label map is an error naming this key.
    _C.MODEL.ACTION_HEAD.NUM_CLASSES = 0
    # RoIAlign output size on the temporally averaged res5 maps, then spatial max pool (ACAR
    # Sec. 3.2: 7x7).
    _C.MODEL.ACTION_HEAD.POOLER_RESOLUTION = 7
    # Channels after the 1x1 reduction of the [slow, fast] context (official: 1024).
    _C.MODEL.ACTION_HEAD.REDUCE_DIM = 1024
    # Channels of the relation features (official: 512).
    _C.MODEL.ACTION_HEAD.HIDDEN_DIM = 512
    # Downsampling of the actor-context relation maps before HR2O: "none", "2x2" (official,
    # 3x3/2 max pool), "4x4" or "global" (ACAR Table 1c).
    _C.MODEL.ACTION_HEAD.DOWNSAMPLE = "2x2"
    # High-order relation operator: "nl", "gattn", "rn" or "avg" (ACAR Table 1b).
    _C.MODEL.ACTION_HEAD.HR2O_NAME = "nl"
    # Number of stacked HR2O blocks (official R50: 2, R101: 1).
    _C.MODEL.ACTION_HEAD.HR2O_DEPTH = 2
    # Use a 1x1 instead of a 3x3 output convolution in the NL HR2O block (official R101: True).
    _C.MODEL.ACTION_HEAD.HR2O_MLP_1X1 = False
    # Dropout inside the HR2O block (official: 0.2) and before the classifier (official: 0).
    _C.MODEL.ACTION_HEAD.HR2O_DROPOUT = 0.2
    _C.MODEL.ACTION_HEAD.DROPOUT = 0.0
    # Indices (into the K classes) that are mutually exclusive pose classes and get a softmax
    # instead of a sigmoid. Empty = take "pose_class_indices" from the MetadataCatalog of the
    # first training (or test) dataset (label map "label_type: PERSON_MOVEMENT"), resolved by
    # setup_cfg like NUM_CLASSES; indices that differ from the split's are an error naming this key.
    _C.MODEL.ACTION_HEAD.POSE_CLASS_INDICES = []
    # Use the pose softmax at all (official: pose_softmax True).
    _C.MODEL.ACTION_HEAD.POSE_SOFTMAX = True
    # Actor boxes. These three keys are the only place these thresholds live; the mapper and the
    # model both read them from here.
    # Training ROIs = ground-truth boxes + person proposals whose detector score is at least this
    # (official ACAR-Net AVA recipe: 0.9) ...
    _C.MODEL.ACTION_HEAD.TRAIN_PROPOSAL_SCORE_THRESH = 0.9
    # ... and whose best IoU with a ground-truth box is at least this; such a proposal takes the
    # labels of that box (official: 0.9). Proposals matching no box have no labels and are dropped.
    _C.MODEL.ACTION_HEAD.TRAIN_PROPOSAL_IOU_THRESH = 0.9
    # Test ROIs = person proposals with a score at least this (official: 0.85). Applied by the
    # model (ACARNet) to every test-time proposal, whatever its source; the mapper passes all.
    _C.MODEL.ACTION_HEAD.TEST_PROPOSAL_SCORE_THRESH = 0.85
    # PySlowFastROIHeads only (PySlowFast's AVA head, acar_d2/modeling/roi_heads/pyslowfast_heads.py):
    # RoIAlign "aligned" (half-pixel offset; PySlowFast DETECTION.ALIGNED, False in its AVA c2 configs),
    _C.MODEL.ACTION_HEAD.POOLER_ALIGNED = False
    # rows of its linear projection (PySlowFast AVA: 80, one per action id 1..80; 0 = NUM_CLASSES)
    _C.MODEL.ACTION_HEAD.PROJECTION_CLASSES = 0
    # and the projection rows that are the NUM_CLASSES outputs, in order ([] = all rows; AVA: the 60
    # evaluated ids minus one, so scores, names and the evaluator follow the packaged 60-class list).
    _C.MODEL.ACTION_HEAD.PROJECTION_INDICES = []
    # VideoMAEROIHeads only: test boxes widened by (x, y) fractions of their size, half on each
    # side, and clipped before pooling (official BoxList.extend((0.1, 0.05))); [0, 0] = none.
    _C.MODEL.ACTION_HEAD.TEST_BOX_EXTENSION = [0.0, 0.0]
    # Backbone features read by the action heads, in the channel-concatenation order of the
    # official head ([slow, fast]); their widths come from Backbone.output_shape().
    _C.MODEL.ROI_HEADS.IN_FEATURES = ["slow", "fast"]


def add_solver_config(cfg: CN) -> None:
    """
    Keys of the training loop beyond detectron2's ``SOLVER`` (``tools/train_net.py``).

    The official schedule itself (SGD + Nesterov, warm-up, two x0.1 decays) is expressed with
    detectron2's own keys in ``configs/Base-AVA.yaml``; only what detectron2 lacks is added here.
    """
    _C = cfg
    # Save every rank's Python / NumPy / torch (and CUDA) RNG states in every checkpoint and restore
    # them on --resume: the step's own draws (dropout) then continue exactly. Each clip's draws do
    # not rest on them: they are seeded by the clip's stream position (acar_d2/data/sample_rng.py).
    _C.SOLVER.CHECKPOINT_RNG_STATE = True
    # On --resume, start the training sampler where the interrupted run stopped (skip the
    # start_iter * batch indices already consumed) instead of replaying the stream from its start.
    _C.SOLVER.RESUME_DATA_POSITION = True
    # Period (iterations) of the console line with loss / LR / ETA and of the metrics.json /
    # TensorBoard writes (detectron2's DefaultTrainer hard-codes 20).
    _C.SOLVER.LOG_PERIOD = 20


def add_person_detector_config(cfg: CN) -> None:
    """
    Keys of the person detector inside ``ACARNet`` (``cfg.MODEL.PERSON_DETECTOR``): a detectron2
    Faster R-CNN built from its own detectron2 config (``acar_d2/modeling/person_detector.py``).
    """
    _C = cfg
    _C.MODEL.PERSON_DETECTOR = CN()
    # Name in PERSON_DETECTOR_REGISTRY ("PersonDetector"); "" = no detector, actor boxes come from
    # the proposal files only (ACAR-Net's own setting: offline Faster R-CNN proposals).
    _C.MODEL.PERSON_DETECTOR.NAME = ""
    # The detector's own detectron2 config: a yaml path (absolute, relative to the working folder or
    # to the acar_d2 repository) or a detectron2 model-zoo name, e.g.
    # "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml" (the person detector for real footage).
    _C.MODEL.PERSON_DETECTOR.CONFIG_FILE = ""
    # Weights of the detector alone: a plain detectron2 detector checkpoint (keys backbone.*,
    # proposal_generator.*, roi_heads.*), a local path or detectron2:// URL, e.g.
    # "detectron2://COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl".
    # Loaded with the model's weights, not when it is built (build_model reads no file, like
    # detectron2's): ACARCheckpointer.from_config loads it into the detector first, then
    # MODEL.WEIGHTS on top (an ACARNet checkpoint's person_detector.* win; resuming a run whose
    # checkpoint holds them all does not read it). "" = random init (train it jointly) or
    # restored by MODEL.WEIGHTS.
    _C.MODEL.PERSON_DETECTOR.WEIGHTS = ""
    # Class index of "person" inside the detector (COCO-trained detectron2 models: 0).
    _C.MODEL.PERSON_DETECTOR.PERSON_CLASS_ID = 0
    # The actor-box thresholds (test score 0.85; training score 0.9 and IoU 0.9 with a ground-truth
    # box) are MODEL.ACTION_HEAD.{TEST,TRAIN}_PROPOSAL_*: one setting for every box source.
    # Inference only (eval mode, no gradients, no optimizer state) instead of fine-tuning jointly.
    _C.MODEL.PERSON_DETECTOR.FROZEN = False
    # Weight of the detector losses (loss_cls, loss_box_reg, loss_rpn_cls, loss_rpn_loc) in the
    # joint loss; with one SGD optimizer it scales the detector's effective learning rate.
    _C.MODEL.PERSON_DETECTOR.LOSS_WEIGHT = 1.0
    # Detector losses use at most this many key frames of each training batch (0 = all): the
    # detector needs fewer images than the action model, and its training step costs the most.
    _C.MODEL.PERSON_DETECTOR.TRAIN_MAX_IMAGES = 0
    # Where training actor boxes beyond the ground truth come from: "gt" (ground truth only),
    # "detector" (the detector online, detached) or "file" (the dataset's proposal file), both
    # matched by MODEL.ACTION_HEAD.TRAIN_PROPOSAL_SCORE_THRESH / TRAIN_PROPOSAL_IOU_THRESH.
    _C.MODEL.PERSON_DETECTOR.TRAIN_BOX_SOURCE = "detector"
    # Actor boxes at test time when the inputs also carry proposals from a file: "detector" or
    # "file". Without a proposal file the detector is always used.
    _C.MODEL.PERSON_DETECTOR.TEST_BOX_SOURCE = "detector"


def add_dataset_files_config(cfg: CN) -> None:
    """
    Keys of where a split's files are (``cfg.DATASETS.AVA_FILES``), applied to the registered
    splits by ``acar_d2.data.layouts.apply_dataset_config(cfg)``. Per-split proposal files use
    detectron2's own ``DATASETS.PROPOSAL_FILES_TRAIN`` / ``PROPOSAL_FILES_TEST`` (one path per
    dataset of ``DATASETS.TRAIN`` / ``TEST``, "" keeps the split's own; any of the PySlowFast CSV,
    MMAction2 and ACAR-Net pickle formats). datasets/README.md: "you have X -> set Y".
    """
    _C = cfg
    _C.DATASETS.AVA_FILES = CN()
    # Frame folder (<video_id>/<frames>) of every AVA-format split used; "" = the split's own
    # (builtin AVA: ava/frames, else ava/data, ACAR-Net's). Frame names are detected per video.
    _C.DATASETS.AVA_FILES.FRAME_ROOT = ""
    # Use PySlowFast frame lists where the split has one on disk; False = list the frame folders.
    _C.DATASETS.AVA_FILES.FRAME_LISTS = True
    # Your own AVA-format splits, registered from the config (no Python needed;
    # acar_d2/data/datasets/from_config.py, docs/CUSTOM_DATA.md): a list of
    # {NAME, ANNOTATIONS, LABEL_MAP, FRAMES and/or VIDEOS, FRAME_LIST, EXCLUSIONS, PROPOSALS, FPS,
    # FIRST_SECOND}, the arguments of register_ava_format_dataset. Relative paths are relative to
    # the working folder, as detectron2's MODEL.WEIGHTS. tools/train_net.py validates the ones
    # DATASETS.TRAIN / TEST use before training (tools/validate_dataset.py's checks).
    _C.DATASETS.CUSTOM = []


def add_safety_config(cfg: CN) -> None:
    """
    Keys that turn off a refusal (docs/SAFETY.md): weights that do not fit the model, pickles
    that could run code, training over a finished run.
    """
    _C = cfg
    # Refuse MODEL.WEIGHTS that leave a model tensor unloaded or shape-mismatched, or hold tensors
    # the model lacks (evaluation also refuses an empty MODEL.WEIGHTS). Training still accepts a
    # file without any roi_heads.* / person_detector.* tensors (those are new, said in one line).
    # False: load what fits and log the rest (experts only).
    _C.MODEL.WEIGHTS_STRICT = True
    # The classifier rows of MODEL.WEIGHTS and the model's classes (docs/CHECKPOINTS.md "Class
    # rows"): "by_id" matches them by label-map id, checked by name (a checkpoint of the whole
    # dataset narrows to a DATASETS.CLASSES subset; other names are an error); "by_name" matches by
    # name, for fine-tuning a published model to your own label map: classes the checkpoint lacks
    # start from new rows (training only, said in the log). Every other tensor still loads
    # strictly (a checkpoint of another backbone is an error).
    _C.MODEL.WEIGHTS_CLASS_MAP = "by_id"
    # Label map (.pbtxt) of the classifier rows of a MODEL.WEIGHTS file that does not list its
    # classes (official ACAR-Net / PySlowFast files; acar_d2 checkpoints carry theirs). "" = the
    # file's own list, else with DATASETS.CLASSES the dataset's full label map, else rows as they are.
    _C.MODEL.WEIGHTS_LABEL_MAP = ""
    # Allow full unpickling of checkpoints holding objects other than tensors / arrays / plain
    # values. Unpickling runs code named by the file: only for files from a trusted source.
    _C.MODEL.ALLOW_UNSAFE_PICKLE = False
    # Train into an OUTPUT_DIR that holds a finished or interrupted run (model_final.pth or
    # last_checkpoint) without --resume, replacing its checkpoints and metrics.json.
    _C.SOLVER.OVERWRITE_OUTPUT_DIR = False


def add_inference_config(cfg: CN) -> None:
    """
    Keys of the inference path (``ActionPredictor``, ``VideoActionPredictor``, the demo,
    ``tools/train_net.py --eval-only``): ``acar_d2.modeling.inference.prepare_for_inference``.
    ``build_model`` ignores them (it returns the plain, trainable model).
    """
    _C = cfg
    _C.MODEL.INFERENCE = CN()
    # Fold the backbone's and the person detector's stored-statistics BatchNorms into the
    # convolutions before them (same outputs up to float rounding, ~1e-6). False = the plain model.
    _C.MODEL.INFERENCE.TRANSFORMS = True
    # Arithmetic of the action model and the person detector together (autocast; outputs float32):
    # "fp32"; "bf16" (CPUs with native bf16, AVX512-BF16 / AMX, refused elsewhere; CUDA GPUs that
    # have it); "fp16" (CUDA only). docs/DEMO.md "Speed" has the drift and mAP change of bf16.
    _C.MODEL.INFERENCE.PRECISION = "fp32"
    # torch.compile the action backbone (inductor, weights frozen as constants): ~10% faster in fp32
    # on a CPU (docs/DEMO.md "Speed"), after a first call that compiles (9 s with a warm inductor
    # cache, ~100 s cold) and again for every new clip size. Needs a C++ compiler on a CPU.
    _C.MODEL.INFERENCE.COMPILE = False
    # On a CPU, keep the process's freed memory for the next forward (glibc: large blocks from the
    # heap, trim above 1 GiB) instead of faulting zero-filled pages in for each activation: the
    # R50 eval forward 5-12% faster with the transforms, 15-34% without (docs/DEMO.md "Speed";
    # acar_d2/utils/cpu_memory.py). Process-wide; a no-op without glibc.
    _C.MODEL.INFERENCE.KEEP_FREED_MEMORY = True


def add_acar_config(cfg: CN) -> None:
    """
    Add every acar_d2 key to a detectron2 config (call before ``merge_from_file``).

    Args:
        cfg (CfgNode): e.g. ``detectron2.config.get_cfg()``.
    """
    add_clip_input_config(cfg)
    add_data_config(cfg)
    add_slowfast_config(cfg)
    add_action_head_config(cfg)
    add_videomae_config(cfg)
    add_solver_config(cfg)
    add_person_detector_config(cfg)
    add_safety_config(cfg)
    add_feature_bank_config(cfg)
    add_dataset_files_config(cfg)
    add_inference_config(cfg)
    # detectron2 defaults to "cuda"; default to what this machine has (an explicit "cuda" on a
    # machine without CUDA is an error, see acar_d2.engine.setup_cfg).
    cfg.MODEL.DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    cfg.MODEL.META_ARCHITECTURE = "ACARNet"
    cfg.MODEL.BACKBONE.NAME = "build_slowfast_backbone"
    cfg.MODEL.ROI_HEADS.NAME = "ACARROIHeads"
