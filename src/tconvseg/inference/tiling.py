"""Tiled inference: images of any size within a memory budget (``tiles=auto|none|[h,w]`` in eval and predict).

An image is cut into overlapping tiles; the tiles are run in batches (tiles of one size together) and
their class probabilities are blended with a window that is zero within ``margin`` pixels of a tile
edge inside the image (pixels closer than ``margin`` to it) and rises linearly to one across the overlap, then divided by the summed
weights — every pixel's weights sum to one, so no seam is drawn by the blend itself.

The mask is finished band by band (`TiledInference.labels`): one row of tiles runs at a time, and rows that no
later tile reaches are blended, turned into class indices and their probabilities dropped, so memory grows with the
image's width and the tile's size, not with its height. The whole probability map (``TiledInference.__call__``)
is still there for callers that need it; both blend in the same order and give the same numbers.

Edge tiles are smaller than the others and run as they are: the matched decoder restores any H x W
exactly, so no tile is padded (a padded tile would show the network a border that is not in the image).
Where the network's receptive field radius is at most ``margin``, tiled and whole-image probabilities
agree to float rounding (``tests/test_tiling.py`` checks it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

#: What turns a batch of images (or tiles) into the network's input: ``(B, C, h, w) -> (B, C, h, w)``, pixel by pixel.
Prepare = Callable[[torch.Tensor], torch.Tensor]

#: Default pixels per forward pass under ``tiles=auto`` (tiles of one batch together): about 1 GB of
#: activations for the CamVid recipe's network in fp32.
DEFAULT_MAX_PIXELS = 4_000_000


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``0..length``: tiles of ``tile`` pixels, ``overlap`` shared by neighbours,
    the last one cut at ``length`` (smaller, never shifted or padded)."""
    if tile >= length:
        return [(0, length)]
    stride = tile - overlap
    spans, start = [], 0
    while True:
        spans.append((start, min(start + tile, length)))
        if start + tile >= length:
            return spans
        start += stride


def axis_weights(start: int, stop: int, length: int, overlap: int, margin: int) -> torch.Tensor:
    """Blend weights ``(stop - start,)`` of one tile along one axis: 1 on sides that are the image's own border;
    on sides inside the image 0 within ``margin`` pixels of the tile edge, then a linear rise over the overlap."""
    distance = torch.arange(stop - start, dtype=torch.float64)
    weights = torch.ones(stop - start, dtype=torch.float64)
    ramp = overlap - 2 * margin + 1
    if start > 0:
        weights = torch.minimum(weights, ((distance - margin + 1) / ramp).clamp(0, 1))
    if stop < length:
        weights = torch.minimum(weights, ((stop - start - distance - margin) / ramp).clamp(0, 1))
    return weights


def check_tiling(tile: Sequence[int], overlap: int, margin: int) -> tuple[int, int]:
    """``tile`` as ``(h, w)`` after checking that the options leave every pixel a positive weight."""
    if isinstance(tile, (str, bytes)) or len(tile) != 2 or not all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in tile):
        raise ValueError(f"tiles={tile!r} is invalid; expected auto, none or [height, width] in pixels, e.g. tiles=[512,512]")
    if not 0 <= 2 * margin <= overlap < min(tile):
        raise ValueError(
            f"tile_overlap={overlap} with tile_margin={margin} and tiles={list(tile)} is invalid; expected "
            f"0 <= 2 * tile_margin <= tile_overlap < the tile's shorter side (a margin is the receptive-field radius trusted to be "
            f"missing at a tile edge)"
        )
    return int(tile[0]), int(tile[1])


def auto_tile(height: int, width: int, max_pixels: int, overlap: int) -> tuple[int, int] | None:
    """``None`` when the whole image fits in ``max_pixels``, else a square tile of about ``max_pixels`` pixels."""
    if height * width <= max_pixels:
        return None
    side = max(2 * overlap + 2, math.isqrt(max_pixels))
    return min(side, height), min(side, width)


class TiledInference:
    """``scores_fn`` run tile by tile, and the mask finished band by band.

    ``tiled(images (N, C, H, W)) -> log-probabilities (N, K, H, W)`` (the whole map, for a caller that needs the
    probabilities); ``tiled.labels(images) -> (N, H, W)`` class indices and ``tiled.bands(image)`` (rows of
    log-probabilities, top to bottom) never hold more than about one row of tiles of probabilities: one row of
    tiles (a band) runs at a time, is blended with the overlap rows the previous bands left pending, and the rows
    no later tile reaches are finished and handed on. All three give the same numbers: each pixel's weighted
    probabilities are summed in the order of one pass over the whole image (tiles of one size together, in
    row-major order), so the banded labels equal the argmax of the whole map exactly.

    Args:
        scores_fn: images ``(B, C, h, w)`` to scores ``(B, K, h, w)`` whose softmax is the class probability
            (the network, or a `tconvseg.inference.tta.TestTimeAugmentation`: TTA then runs on each tile).
        tiles: ``"none"`` (the whole image, ``scores_fn`` itself), ``"auto"`` (tiles only when an image has more
            than ``max_pixels`` pixels) or ``(h, w)``.
        overlap: pixels neighbouring tiles share.
        margin: pixels at an inner tile edge whose predictions get no weight (the receptive-field radius that
            may be missing there); default ``overlap // 4``.
        max_pixels: pixels per forward pass: the tile size under ``auto`` and how many tiles of one band share a
            batch.
    """

    def __init__(
        self, scores_fn: Callable[[torch.Tensor], torch.Tensor], tiles: str | Sequence[int] = "none", overlap: int = 64,
        margin: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.scores_fn = scores_fn
        self.overlap = int(overlap)
        self.margin = self.overlap // 4 if margin is None else int(margin)
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"max_pixels_per_batch={max_pixels!r} is invalid; expected a positive number of pixels")
        self.max_pixels = max_pixels
        if isinstance(tiles, str) and tiles not in ("none", "auto"):
            raise ValueError(f"tiles={tiles!r} is invalid; expected auto, none or [height, width] in pixels, e.g. tiles=[512,512]")
        if tiles in ("none", "auto", None):
            self.tiles: str | tuple[int, int] = tiles or "none"
        else:
            self.tiles = check_tiling(list(tiles), self.overlap, self.margin)

    def record(self) -> dict[str, Any]:
        """What a report says about the tiling."""
        tiles = list(self.tiles) if isinstance(self.tiles, tuple) else self.tiles
        if tiles == "none":
            return {"tiles": tiles}
        return {"tiles": tiles, "overlap": self.overlap, "margin": self.margin, "max_pixels": self.max_pixels}

    def tile_for(self, height: int, width: int) -> tuple[int, int] | None:
        """The tile an image of ``height x width`` is cut into; ``None``: it runs whole."""
        if self.tiles == "none":
            return None
        tile = auto_tile(height, width, self.max_pixels, self.overlap) if self.tiles == "auto" else self.tiles
        if tile is not None:
            check_tiling(tile, self.overlap, self.margin)
        return tile

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        tile = self.tile_for(*images.shape[-2:])
        if tile is None:
            return self.scores_fn(images)
        return torch.cat([torch.cat([rows for _, _, rows in self._bands(image[None], tile)], dim=2) for image in images])

    def labels(self, images: torch.Tensor, prepare: Prepare | None = None) -> torch.Tensor:
        """Class indices ``(N, H, W)``, ``uint8`` (``int64`` above 256 classes): the argmax of ``self(images)``,
        finished band by band, so a tiled image never has its whole probability map in memory.

        ``prepare``: what turns ``images`` into the network's input, run on each batch of tiles (e.g. ``uint8``
        to normalised floats: the whole image then never exists as floats); ``None``: they are the input.
        """
        tile = self.tile_for(*images.shape[-2:])
        if tile is None:
            scores = self.scores_fn(images if prepare is None else prepare(images))
            return scores.argmax(dim=1).to(label_dtype(scores.shape[1]))
        out: torch.Tensor | None = None
        for n, image in enumerate(images):
            for top, bottom, rows in self._bands(image[None], tile, prepare):
                if out is None:
                    out = torch.empty(images.shape[0], *images.shape[-2:], dtype=label_dtype(rows.shape[1]), device=rows.device)
                out[n, top:bottom] = rows[0].argmax(dim=0)
        assert out is not None
        return out

    def bands(self, image: torch.Tensor, prepare: Prepare | None = None) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(top, bottom, scores (1, K, bottom - top, W))`` of ``image (1, C, H, W)`` from top to bottom, each row
        once: the whole image in one piece when it is not tiled (raw ``scores_fn`` scores), else log-probabilities.
        ``prepare`` as in `labels`."""
        tile = self.tile_for(*image.shape[-2:])
        if tile is None:
            yield 0, image.shape[-2], self.scores_fn(image if prepare is None else prepare(image))
        else:
            yield from self._bands(image, tile, prepare)

    def _bands(self, image: torch.Tensor, tile: tuple[int, int], prepare: Prepare | None = None) -> Iterator[tuple[int, int, torch.Tensor]]:
        height, width = image.shape[-2:]
        rows, cols = tile_spans(height, tile[0], self.overlap), tile_spans(width, tile[1], self.overlap)
        # Each pixel's sum keeps the order of a single pass over the image (sizes in order of first appearance,
        # row-major within one size), so the result is the same to the last bit as the whole map's.
        group: dict[tuple[int, int], int] = {}
        for r0, r1 in rows:
            for c0, c1 in cols:
                group.setdefault((r1 - r0, c1 - c0), len(group))
        col_weights = [axis_weights(c0, c1, width, self.overlap, self.margin) for c0, c1 in cols]
        pending: list[_Part] = []  # weighted probabilities of the rows not finished yet
        done = 0
        for i, (r0, r1) in enumerate(rows):
            row_weights = axis_weights(r0, r1, height, self.overlap, self.margin)
            by_width: dict[int, list[int]] = defaultdict(list)
            for j, (c0, c1) in enumerate(cols):
                by_width[c1 - c0].append(j)
            for w, js in by_width.items():
                per_batch = max(1, self.max_pixels // ((r1 - r0) * w))
                for k in range(0, len(js), per_batch):
                    chunk = js[k : k + per_batch]
                    batch = torch.cat([image[..., r0:r1, cols[j][0] : cols[j][1]] for j in chunk])
                    probs = self.scores_fn(batch if prepare is None else prepare(batch)).float().softmax(dim=1)
                    for n, j in enumerate(chunk):
                        window = torch.outer(row_weights, col_weights[j]).float().to(image.device)
                        pending.append(_Part((group[(r1 - r0, w)], r0, cols[j][0]), r0, cols[j][0], probs[n].mul_(window), window))
                    del probs
            stop = rows[i + 1][0] if i + 1 < len(rows) else height
            pending.sort(key=lambda part: part.key)
            # Finished rows in pieces of about one tile's pixels: the piece is the only full-width buffer.
            step = max(1, (tile[0] * tile[1]) // width)
            for top in range(done, stop, step):
                yield top, min(top + step, stop), _blend(pending, top, min(top + step, stop), width)
            done = stop
            pending = [part.below(stop) for part in pending if part.top + part.weighted.shape[1] > stop]


def label_dtype(num_classes: int) -> torch.dtype:
    """The smallest dtype of a label map of ``num_classes`` classes that torch and PIL take: uint8, else int64."""
    return torch.uint8 if num_classes <= 256 else torch.int64


class _Part:
    """Rows ``top..`` of one tile's weighted probabilities ``(K, h, w)`` and its blend window ``(h, w)``, from column ``left``."""

    __slots__ = ("key", "top", "left", "weighted", "window")

    def __init__(self, key: tuple[int, int, int], top: int, left: int, weighted: torch.Tensor, window: torch.Tensor) -> None:
        self.key, self.top, self.left, self.weighted, self.window = key, top, left, weighted, window

    def below(self, row: int) -> _Part:
        """The rows from ``row`` on, copied (a view would keep the whole tile, and its batch, alive)."""
        cut = row - self.top
        return _Part(self.key, row, self.left, self.weighted[:, cut:].clone(), self.window[cut:].clone())


def _blend(parts: list[_Part], top: int, bottom: int, width: int) -> torch.Tensor:
    """Log-probabilities ``(1, K, bottom - top, width)`` of rows ``top..bottom``: the parts summed in their order,
    divided by the summed weights."""
    first = parts[0].weighted
    total = torch.zeros(1, first.shape[0], bottom - top, width, dtype=torch.float32, device=first.device)
    weight_sum = torch.zeros(bottom - top, width, dtype=torch.float32, device=first.device)
    for part in parts:
        lo, hi = max(top, part.top), min(bottom, part.top + part.weighted.shape[1])
        if lo >= hi:
            continue
        right = part.left + part.weighted.shape[2]
        total[0, :, lo - top : hi - top, part.left : right] += part.weighted[:, lo - part.top : hi - part.top]
        weight_sum[lo - top : hi - top, part.left : right] += part.window[lo - part.top : hi - part.top]
    total.div_(weight_sum)  # every pixel has a positive weight (check_tiling)
    return total.clamp_min_(torch.finfo(torch.float32).tiny).log_()


def tiling_options(options: Any) -> dict[str, Any]:
    """The `TiledInference` options from an entry point's config (``tiles``, ``tile_overlap``, ``tile_margin``,
    ``max_pixels_per_batch``), checked by building it once; whole images when the config has no ``tiles``."""
    get = options.get
    raw = get("tiles", "none")
    tiles = raw if raw is None or isinstance(raw, str) else list(raw)
    built = {"tiles": tiles, "overlap": get("tile_overlap", 64), "margin": get("tile_margin", None),
             "max_pixels": get("max_pixels_per_batch", DEFAULT_MAX_PIXELS)}
    TiledInference(lambda x: x, **built)  # the options' errors, before anything is loaded
    return built
