"""A key frame beyond its video in the data path (issue 24): the container header read without
decoding, and the loaders and the mapper refuse it with the video and timestamp (no clamp)."""
import os

import av
import numpy as np
import pytest
from PIL import Image

from acar_d2.data.clip_mapper import ClipDatasetMapper
from acar_d2.data.video_io import ClipReader, video_header
from acar_d2.data.datasets.ava import load_ava_instances
from acar_d2.data.datasets.ava_kinetics import load_kinetics_instances

from . import ava_fixtures as fx


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return fx.make_ava_world(tmp_path_factory.mktemp("kfr"), with_videos=True)


def _remux(src: str, dst: str, fmt: str) -> None:
    """Copy the packets of ``src`` into container ``fmt`` (no re-encoding)."""
    with av.open(src) as i, av.open(dst, "w", format=fmt) as o:
        ist = i.streams.video[0]
        ost = o.add_stream_from_template(ist)
        for packet in i.demux(ist):
            if packet.dts is not None:
                packet.stream = ost
                o.mux(packet)


def test_video_header_without_decoding(world, tmp_path):
    mp4 = os.path.join(world["videos"], "vidA.mp4")
    assert video_header(mp4) == (fx.NUM_FRAMES, fx.NUM_FRAMES / fx.FPS, fx.FPS, 24, 32)
    # Matroska: no frame count in the header, the container's duration times the rate
    _remux(mp4, str(tmp_path / "a.mkv"), "matroska")
    h = video_header(str(tmp_path / "a.mkv"))
    assert (h.num_frames, h.height, h.width) == (fx.NUM_FRAMES, 24, 32)
    # a raw stream: no count, no duration: its packets are counted (demuxed, not decoded)
    _remux(mp4, str(tmp_path / "a.h264"), "h264")
    with av.open(str(tmp_path / "a.h264")) as c:
        assert not c.streams.video[0].frames and c.streams.video[0].duration is None
    assert video_header(str(tmp_path / "a.h264")).num_frames == fx.NUM_FRAMES
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        video_header(str(tmp_path / "nope.mp4"))


@pytest.mark.parametrize("source", ["frames", "videos"])
def test_ava_loader_names_video_and_timestamp(world, tmp_path, source):
    rows = list(fx.GT_ROWS) + [("vidA", 903, 0.1, 0.1, 0.2, 0.2, 12, 0),   # last valid second
                               ("vidA", 904, 0.1, 0.1, 0.2, 0.2, 12, 0)]   # one past the end
    ann = fx.write_csv(tmp_path / "gt.csv", rows)
    kw = fx.load_kwargs(world, proposals=None)
    if source == "videos":
        kw.update(frames=None, videos=world["videos"])
    where = os.path.join(world["frames"], "vidA") if source == "frames" else \
        os.path.join(world["videos"], "vidA.mp4")
    with pytest.raises(ValueError, match=r"vidA,904 maps to frame 16 .*16 frames of video "
                                         rf"'vidA' \({where}\)"):
        load_ava_instances(ann, world["label_map"], **kw)
    dicts = load_ava_instances(fx.write_csv(tmp_path / "ok.csv", rows[:-1]), world["label_map"],
                               **kw)
    assert {(d["timestamp"], d["key_frame_index"]) for d in dicts if d["video_id"] == "vidA"} == \
        {(900, 0), (901, 4), (903, 12)}


def test_kinetics_clip_shorter_than_its_name_is_an_error(tmp_path):
    clip = tmp_path / "frames" / "yt-1_000010_000014"   # named 4 s, 3 s of frames
    clip.mkdir(parents=True)
    for k in range(3 * fx.FPS):
        Image.fromarray(fx.frame_image(k, (24, 32))).save(clip / f"img_{k + 1:05d}.jpg")
    lm = tmp_path / "lm.pbtxt"
    lm.write_text(fx.LABEL_MAP)
    ok = ("yt-1", "12.0", 0.1, 0.1, 0.5, 0.9, 12)
    d = load_kinetics_instances(fx.write_csv(tmp_path / "ok.csv", [ok]), str(lm),
                                frames=str(tmp_path / "frames"), fps=fx.FPS)
    assert d[0]["key_frame_index"] == 8 and d[0]["num_frames"] == 12
    late = fx.write_csv(tmp_path / "late.csv", [ok, ("yt-1", "13.0", 0.1, 0.1, 0.5, 0.9, 12)])
    # before: clamped silently to the clip's last frame
    with pytest.raises(ValueError, match=rf"yt-1,13 maps to frame 12 .*'yt-1_000010_000014', "
                                         rf"outside its 12 frames \({clip}\)"):
        load_kinetics_instances(late, str(lm), frames=str(tmp_path / "frames"), fps=fx.FPS)


@pytest.mark.parametrize("source", ["frames", "video"])
def test_mapper_refuses_key_frame_beyond_video(world, source):
    mapper = ClipDatasetMapper(False, action_ids=[1, 12, 17, 79], num_frames=4, sampling_rate=2,
                               short_side=24, reader=ClipReader(source))
    d = {"video_id": "vidA", "timestamp": 904, "fps": float(fx.FPS), "num_frames": fx.NUM_FRAMES,
         "frame_dir": os.path.join(world["frames"], "vidA"),
         "frame_template": "vidA_{:06d}.jpg",
         "video_file": os.path.join(world["videos"], "vidA.mp4"),
         "key_frame_index": 15, "height": 24, "width": 32, "annotations": [],
         "proposals": {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32)}}
    out = mapper(dict(d))  # the last frame: its clip runs past the end, padded
    assert out["clip"].shape[1] == 4
    where = d["frame_dir"] if source == "frames" else d["video_file"]
    with pytest.raises(ValueError, match=rf"key frame vidA,904 \({where}\): key frame 16 is "
                                         "outside the video's 16 frames"):
        mapper(dict(d, key_frame_index=16))
