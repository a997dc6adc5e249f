"""Video in, video out, streamed: decode a clip in batches of frames, write each predicted batch at once.

Memory holds one batch of frames (and the encoder's few frames of look-ahead), whatever the clip's length.
`probe` reads a clip's header (size, frame rate, frame count), `VideoFrames` decodes it into network batches,
`VideoWriter` encodes the overlay frames (H.264 by default, another codec FFmpeg has when it lacks it, see
`choose_codec`), `write_masks` writes a palette PNG of class indices per frame, `FrameProgress` shows frames/s.

FFmpeg comes with PyAV (``pip install 'tconvseg[video]'``), imported only when a video is read or written.
A clip that ends early (truncated) or stops decoding is not a crash: `VideoFrames` ends at the last good frame
and keeps the error in ``error`` (naming the file and the frame reached), so what was decoded is predicted and
written, the output is closed and playable, and the caller reports the error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text
from torch.utils.data import IterableDataset

from tconvseg.data.datasets.base import apply_transforms
from tconvseg.data.datasets.info import DatasetInfo
from tconvseg.data.errors import DatasetError, DatasetNotFoundError
from tconvseg.inference.visualize import overlay, palette_png
from tconvseg.training.atomic import atomic_save_image

log = logging.getLogger(__name__)

#: An input with one of these suffixes is predicted as a video (anything else: as images).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
#: Encoders tried, in order, after the requested one: H.264 (x264, FFmpeg's own name for it, Cisco's), then MPEG-4 part 2.
FALLBACK_CODECS = ("libx264", "h264", "libopenh264", "mpeg4")
#: The frame rate written when a clip declares none.
DEFAULT_RATE = Fraction(25)


class VideoError(DatasetError):
    """A video file that cannot be opened, decoded to its end, or encoded: the message names the file and the frame."""


def is_video(source: str | Path) -> bool:
    """Whether ``source`` names a video file by its suffix (`VIDEO_SUFFIXES`, any case)."""
    return Path(str(source)).suffix.lower() in VIDEO_SUFFIXES


def import_av() -> Any:
    """The ``av`` module (PyAV), or an ImportError saying how to install it."""
    try:
        import av
    except ImportError as exc:
        raise ImportError(
            "predicting a video needs PyAV (FFmpeg's libraries, shipped in its wheel), which is not installed: "
            "pip install 'tconvseg[video]' (or pip install av)."
        ) from exc
    return av


@dataclass(frozen=True)
class VideoSource:
    """A clip's header: ``width`` x ``height`` pixels, ``rate`` frames/s, ``frames`` declared (``None``: unknown).

    ``frames`` is the container's frame count when it stores one (MP4, MOV, AVI), else the duration times the rate
    (Matroska, WebM: ``exact`` is False then and the truncation check allows a few frames' slack).
    """

    path: Path
    width: int
    height: int
    rate: Fraction
    frames: int | None
    exact: bool
    codec: str


def _open(av: Any, path: Path) -> Any:
    if not path.is_file():
        raise DatasetNotFoundError(
            f"input={path}: no such video file; expected one clip ending in {', '.join(VIDEO_SUFFIXES)} (a video input is a "
            "single file, not a folder or a glob pattern)"
        )
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise VideoError(
            f"cannot open video file {path} (frame 0 not reached): FFmpeg says {exc}. Expected a video FFmpeg can decode; "
            "the file may not be a video, or be truncated (an MP4 whose index, written at its end, was cut off cannot be read at all)."
        ) from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"video file {path} holds no video stream (streams: {[s.type for s in container.streams]}); expected a video")
    return container


def probe(path: str | Path) -> VideoSource:
    """The header of the clip at ``path`` (its first video stream); nothing is decoded.

    Raises:
        DatasetNotFoundError: no such file. VideoError: FFmpeg cannot open it, or it holds no video stream.
        ImportError: PyAV is not installed.
    """
    av, path = import_av(), Path(path)
    with _open(av, path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            log.warning("%s declares no frame rate; the overlay video is written at %s frames/s", path, DEFAULT_RATE)
            rate = DEFAULT_RATE
        frames, exact = (int(stream.frames), True) if stream.frames else (None, False)
        if frames is None:
            seconds = float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / 1e6
            frames = round(seconds * rate) or None
        return VideoSource(path, stream.codec_context.width, stream.codec_context.height, Fraction(rate), frames, exact,
                           stream.codec_context.name)


class VideoFrames(IterableDataset[dict[str, Any]]):
    """The frames of a clip in batches of ``batch_size``, decoded while they are consumed (one batch in memory).

    Each item: ``{"images": float32 (N, 3, h, w)`` (the frames through ``transforms``, as `ImageFilesDataset`
    does for image files), ``"frames": uint8 numpy (N, H, W, 3)`` (RGB, at the clip's size), ``"indices": [N]``
    (frame numbers from 0)}. An iteration that cannot decode the clip to its end (a decoding error, or fewer
    frames than the header declares) yields the frames it has and stops, with the `VideoError` in ``error``;
    ``decoded`` counts the frames of the last iteration. Use it with ``DataLoader(batch_size=None, num_workers=0)``.
    """

    def __init__(self, source: VideoSource, batch_size: int, transforms: Callable[..., Any] | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is invalid; expected a positive number of frames per batch")
        self.source, self.batch_size, self.transforms = source, batch_size, transforms
        self.error: VideoError | None = None
        self.decoded = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        av, source = import_av(), self.source
        self.error, self.decoded, buffer = None, 0, []
        try:
            container = _open(av, source.path)
        except DatasetError as err:  # the file changed since it was probed
            self.error = err if isinstance(err, VideoError) else VideoError(str(err))
            return
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # FFmpeg's frame and slice threads: decoding stays off the batch's critical path
            try:
                for frame in container.decode(stream):
                    # reformatted to the header's size: a clip whose size changes midway still gives frames of one size
                    buffer.append(frame.to_ndarray(format="rgb24", width=source.width, height=source.height))
                    self.decoded += 1
                    if len(buffer) == self.batch_size:
                        yield self._batch(buffer)
                        buffer = []
            except av.error.FFmpegError as exc:
                self.error = VideoError(f"cannot decode video file {source.path} past frame {self.decoded}: FFmpeg says {exc}.")
            else:
                self.error = self._short()
        if buffer:
            yield self._batch(buffer)

    def _short(self) -> VideoError | None:
        """A `VideoError` when the clip ended before the frames its header declares (a truncated file)."""
        declared = self.source.frames
        if declared is None:
            return None
        slack = 0 if self.source.exact else max(2, declared // 20)  # a duration times a rate is an estimate
        if self.decoded >= declared - slack:
            return None
        counted = "its header declares" if self.source.exact else "its duration and frame rate imply"
        return VideoError(
            f"video file {self.source.path} ends at frame {self.decoded} of the {declared} {counted}: the file is "
            "truncated or damaged there."
        )

    def _batch(self, frames: list[np.ndarray]) -> dict[str, Any]:
        first = self.decoded - len(frames)
        stacked = np.stack(frames)
        # one transform call for the batch (resize and normalisation act per image); the dummy mask the joint
        # transforms expect rides along, as for image files, and is dropped
        batch = torch.from_numpy(np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)))
        images, _ = apply_transforms(self.transforms, batch, torch.zeros(batch.shape[-2:], dtype=torch.uint8))
        return {"images": images, "frames": stacked, "indices": list(range(first, first + len(frames)))}


def codec_available(name: str) -> bool:
    """Whether the FFmpeg of PyAV has a video encoder called ``name`` that opens here (a hardware one may not)."""
    av = import_av()
    try:
        codec = av.codec.Codec(name, "w")
    except ValueError:  # UnknownCodecError: no such encoder
        return False
    if codec.type != "video":
        return False
    context = av.CodecContext.create(codec)
    context.width = context.height = 64
    context.pix_fmt = codec.video_formats[0].name if codec.video_formats else "yuv420p"
    context.time_base = Fraction(1, 25)
    try:
        context.open()
    except av.error.FFmpegError:  # e.g. h264_nvenc without an NVIDIA GPU
        return False
    return True


def choose_codec(preferred: str | None) -> str:
    """``preferred`` when FFmpeg can encode it, else the first of `FALLBACK_CODECS` it can (with a warning naming both).

    Raises:
        VideoError: FFmpeg has none of them.
    """
    candidates = [preferred] if preferred else []
    candidates += [name for name in FALLBACK_CODECS if name != preferred]
    for name in candidates:
        if codec_available(name):
            if preferred and name != preferred:
                log.warning("video_codec=%s: this FFmpeg has no such encoder; the overlay video is written with %s", preferred, name)
            return name
    raise VideoError(f"video_codec={preferred}: this FFmpeg (PyAV) has none of the encoders {candidates}; expected one of them")


def pixel_format(codec: str, width: int, height: int) -> str:
    """4:2:0 chroma, which every player decodes; 4:4:4 for an odd width or height (4:2:0 needs even ones), when the codec has it."""
    av = import_av()
    formats = [f.name for f in (av.codec.Codec(codec, "w").video_formats or [])] or ["yuv420p"]
    even = width % 2 == 0 and height % 2 == 0
    for name in ("yuv420p", "yuv444p") if even else ("yuv444p",):
        if name in formats:
            return name
    raise VideoError(
        f"codec {codec} cannot encode frames of {width}x{height} (its pixel formats: {formats}; an odd width or height needs "
        "yuv444p); expected video_codec=libx264, or a clip of even size"
    )


class VideoWriter:
    """An MP4 at ``path`` of ``width`` x ``height`` RGB frames at ``rate`` frames/s, encoded with ``codec``.

    `write` takes ``(H, W, 3) uint8`` frames one at a time; `close` flushes the encoder and writes the index,
    so the frames written so far play (call it on errors too; it is idempotent). ``frames`` counts them.
    """

    def __init__(self, path: str | Path, width: int, height: int, rate: Fraction, codec: str) -> None:
        av = import_av()
        self.path, self.codec, self.frames = Path(path), codec, 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._av = av
        self._container = av.open(str(self.path), "w")
        try:
            self._stream = self._container.add_stream(codec, rate=rate)
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = pixel_format(codec, width, height)
            self._time_base = 1 / Fraction(rate)
            self._stream.codec_context.time_base = self._time_base
        except Exception:
            self._container.close()
            raise
        self._closed = False

    def write(self, rgb: np.ndarray) -> None:
        """Encode one ``(H, W, 3) uint8`` RGB frame (converted to the codec's pixel format)."""
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = self.frames, self._time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder's delayed frames and close the file (a no-op the second time)."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def overlay_frames(frames: np.ndarray, labels: torch.Tensor, info: DatasetInfo, alpha: float) -> Iterator[np.ndarray]:
    """Each RGB frame ``(H, W, 3)`` of ``frames (N, H, W, 3)`` blended with its label map of ``labels (N, h, w)``.

    Label maps of another size (``scale``) are brought to the frame's by nearest neighbour: the video keeps the clip's size.
    """
    height, width = frames.shape[1:3]
    if tuple(labels.shape[-2:]) != (height, width):
        labels = torch.nn.functional.interpolate(labels[:, None].float(), size=(height, width), mode="nearest-exact")[:, 0].long()
    for rgb, label in zip(frames, labels.cpu()):
        yield overlay(rgb, label, info, alpha)


def write_masks(folder: Path, indices: Sequence[int], labels: torch.Tensor, info: DatasetInfo) -> None:
    """``folder/<frame>.png`` (six digits, from 000000): a palette PNG of class indices per label map of ``labels (N, h, w)``."""
    for index, label in zip(indices, labels.cpu()):
        atomic_save_image(palette_png(label, info), folder / f"{index:06d}.png")


class _FramesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} frames/s" if speed else "– frames/s", style="progress.data.speed")


class _Count(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = f"/{int(task.total)}" if task.total is not None else ""
        return Text(f"{int(task.completed)}{total} frames", style="progress.download")


class FrameProgress:
    """A rich progress bar of frames: count (of ``total`` when known), frames/s, elapsed time."""

    def __init__(self, description: str, total: int | None, console: Console | None = None) -> None:
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), _Count(), _FramesPerSecond(), TimeElapsedColumn(),
                                  console=console, transient=False)
        self._task = self._progress.add_task(description, total=total, start=False)

    def start(self) -> None:
        self._progress.start()
        self._progress.start_task(self._task)

    def advance(self, frames: int) -> None:
        self._progress.advance(self._task, frames)

    def stop(self) -> None:
        self._progress.stop()
