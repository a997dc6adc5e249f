"""tconvseg-predict on a video: the overlay video keeps the clip's frames, size and rate, masks equal image prediction,
TTA and tiles work, and truncated, foreign or unreadable input (or PyAV missing) is explained, keeping what was written."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tconvseg.data.errors import DatasetNotFoundError
from tconvseg.inference import video
from tconvseg.inference.video import VideoError, VideoWriter, choose_codec, probe
from tconvseg.tasks.predict import predict
from tests.helpers.configs import compose_cfg
from tests.helpers.inference import train_tiny
from tests.helpers.scripts import run_script

QUIET = ["callbacks=none", "+trainer.enable_progress_bar=false"]
FRAMES, HEIGHT, WIDTH, RATE = 12, 64, 96, 10


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("train"))


def write_clip(path: Path, frames: int = FRAMES, size: tuple[int, int] = (HEIGHT, WIDTH), rate: int = RATE) -> Path:
    """A clip of moving shapes on noise (H.264 in MP4 with its index first, so a cut file still opens; Matroska as is)."""
    height, width = size
    rng = np.random.default_rng(0)
    background = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    options = {"movflags": "+faststart"} if path.suffix == ".mp4" else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            rgb = background.copy()
            rgb[10:40, 4 * i : 4 * i + 30] = (230, 40, 40)
            rgb[height // 2 :, width // 2 - i :] = (40, 200, 90)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def save_frames(clip: Path, folder: Path) -> list[str]:
    """The clip's frames as decoded, as lossless images ``folder/<frame>.png``; their names."""
    folder.mkdir()
    names = []
    for i, rgb in enumerate(decoded_frames(clip)):
        names.append(f"{i:06d}.png")
        Image.fromarray(rgb).save(folder / names[-1])
    return names


def _predict(tmp: Path, ckpt: Path, source: Path | str, *extra: str, out: str = "out"):
    overrides = [f"ckpt_path={ckpt}", f"input={source}", f"output_dir={tmp / out}", "data=synthetic", *QUIET, *extra]
    return predict(compose_cfg("predict", tmp, overrides))


def _masks(folder: Path, names: list[str]) -> list[np.ndarray]:
    return [np.array(Image.open(folder / name)) for name in names]


@pytest.mark.parametrize("options", [[], ["tta=flip", "tiles=[48,64]", "tile_overlap=16", "tile_margin=4"]], ids=["plain", "tta_tiles"])
def test_a_clip_round_trips_and_its_masks_equal_the_frames_predicted_as_images(ckpt, tmp_path, options):
    clip = write_clip(tmp_path / "drive.mp4")
    summary, objects = _predict(tmp_path, ckpt, clip, "batch_size=5", "video_masks=true", *options)  # 12 = 5 + 5 + 2
    assert summary["frames"] == FRAMES and summary["codec"] == "libx264"
    result = probe(summary["video"])
    assert (result.frames, result.width, result.height, result.rate, result.codec) == (FRAMES, WIDTH, HEIGHT, Fraction(RATE), "h264")
    names = save_frames(clip, tmp_path / "frames")
    assert sorted(p.name for p in summary["masks"].iterdir()) == names and len(names) == FRAMES
    assert Image.open(summary["masks"] / names[0]).mode == "P"

    _predict(tmp_path, ckpt, tmp_path / "frames", "batch_size=5", *options, out="as_images")
    expected = _masks(tmp_path / "as_images", names)
    assert all(np.array_equal(a, b) for a, b in zip(_masks(summary["masks"], names), expected))
    assert len({m.tobytes() for m in expected}) > 1  # the frames differ, so the order is checked too
    if options:
        assert objects["system"].inference.record()["tiles"] == [48, 64]

    overlays = decoded_frames(summary["video"])
    assert len(overlays) == FRAMES and overlays[0].shape == (HEIGHT, WIDTH, 3)
    blended = np.asarray(Image.open(tmp_path / "as_images" / "000003_overlay.jpg"), dtype=float)
    assert np.abs(overlays[3] - blended).mean() < 12  # two lossy codecs of one picture


def test_a_scaled_clip_keeps_its_size_and_masks_have_the_networks(ckpt, tmp_path):
    clip = write_clip(tmp_path / "drive.mkv", frames=4)
    summary, _ = _predict(tmp_path, ckpt, clip, "scale=0.5", "video_masks=true")
    assert (probe(summary["video"]).width, probe(summary["video"]).height, probe(summary["video"]).frames) == (WIDTH, HEIGHT, 4)
    names = save_frames(clip, tmp_path / "frames")
    _predict(tmp_path, ckpt, tmp_path / "frames", "scale=0.5", out="as_images")
    masks, expected = _masks(summary["masks"], names), _masks(tmp_path / "as_images", names)
    assert masks[0].shape == (HEIGHT // 2, WIDTH // 2) and all(np.array_equal(a, b) for a, b in zip(masks, expected))
    assert not (tmp_path / "out" / "drive.png").exists() and (tmp_path / "out" / "legend.png").is_file()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_truncated_clip_is_named_with_the_frame_reached_and_the_output_kept(ckpt, tmp_path, suffix):
    clip = write_clip(tmp_path / f"cut{suffix}", frames=30)
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) * 6 // 10])
    message = rf"cut{suffix}.* ends at frame (\d+) of the 30 .*truncated.* kept: .*cut_overlay\.mp4 is closed and plays"
    with pytest.raises(VideoError, match=message) as info:
        _predict(tmp_path, ckpt, clip, "batch_size=4", "video_masks=true")
    reached = int(info.value.args[0].split(" ends at frame ")[1].split()[0])
    assert 0 < reached < 30
    kept = tmp_path / "out" / "cut_overlay.mp4"
    assert len(decoded_frames(kept)) == reached == len(list((tmp_path / "out" / "cut_masks").iterdir()))


def test_a_file_that_is_no_video_is_named(ckpt, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file with a video suffix")
    with pytest.raises(VideoError, match=r"cannot open video file .*notes\.mp4 \(frame 0 not reached\).*Expected a video FFmpeg can decode"):
        _predict(tmp_path, ckpt, fake)
    assert not (tmp_path / "out").exists()
    with pytest.raises(DatasetNotFoundError, match=r"input=.*missing\.avi: no such video file"):
        _predict(tmp_path, ckpt, tmp_path / "missing.avi")


def test_missing_pyav_says_how_to_install_it(ckpt, tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "drive.mp4", frames=2)
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'tconvseg\[video\]'"):
        _predict(tmp_path, ckpt, clip)


def test_an_encoder_ffmpeg_lacks_falls_back_and_is_named(tmp_path, monkeypatch, caplog):
    assert choose_codec("libx264") == "libx264" and choose_codec("mpeg4") == "mpeg4"
    assert not video.codec_available("aac")  # an audio encoder is no video codec
    assert choose_codec("no_such_codec") == "libx264" and "video_codec=no_such_codec" in caplog.text
    real = video.codec_available
    monkeypatch.setattr(video, "codec_available", lambda name: name == "mpeg4" and real(name))
    assert choose_codec("libx264") == "mpeg4"
    monkeypatch.setattr(video, "codec_available", lambda name: False)
    with pytest.raises(VideoError, match=r"has none of the encoders \['libx264', 'h264', 'libopenh264', 'mpeg4'\]"):
        choose_codec("libx264")


def test_an_odd_sized_clip_is_encoded_at_its_size(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", 33, 21, Fraction(30000, 1001), "libx264") as writer:
        for _ in range(3):
            writer.write(np.zeros((21, 33, 3), dtype=np.uint8))
    result = probe(tmp_path / "odd.mp4")
    assert (result.width, result.height, result.frames, result.rate) == (33, 21, 3, Fraction(30000, 1001))


def test_the_video_memory_benchmark_prints_a_row_per_clip(ckpt, tmp_path):
    result = run_script("video_memory.py", ["--ckpt", str(ckpt), "--frames", "2", "--size", "32", "48", "--data", "synthetic"], tmp_path)
    rows = [line for line in result.stdout.splitlines() if line.strip().startswith("│") and " ok " in line]
    assert [row.split("│")[1].strip() for row in rows] == ["2"]  # one clip: each row is a fresh process (seconds)
