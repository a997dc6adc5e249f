"""Tiled inference: images of any size within a memory budget (``tiles=auto|none|[h,w]`` in eval and predict).

An image is cut into overlapping tiles; the tiles are run in batches (tiles of one size together) and
their class probabilities are blended with a window that is zero within ``margin`` pixels of a tile
edge inside the image (pixels closer than ``margin`` to it) and rises linearly to one across the overlap, then divided by the summed
weights — every pixel's weights sum to one, so no seam is drawn by the blend itself.

Edge tiles are smaller than the others and run as they are: the matched decoder restores any H x W
exactly, so no tile is padded (a padded tile would show the network a border that is not in the image).
Where the network's receptive field radius is at most ``margin``, tiled and whole-image probabilities
agree to float rounding (``tests/test_tiling.py`` checks it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch

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
    """``scores_fn`` run tile by tile: ``tiled(images (N, C, H, W)) -> log-probabilities (N, K, H, W)``.

    Args:
        scores_fn: images ``(B, C, h, w)`` to scores ``(B, K, h, w)`` whose softmax is the class probability
            (the network, or a `tconvseg.inference.tta.TestTimeAugmentation`: TTA then runs on each tile).
        tiles: ``"none"`` (the whole image, ``scores_fn`` itself), ``"auto"`` (tiles only when an image has more
            than ``max_pixels`` pixels) or ``(h, w)``.
        overlap: pixels neighbouring tiles share.
        margin: pixels at an inner tile edge whose predictions get no weight (the receptive-field radius that
            may be missing there); default ``overlap // 4``.
        max_pixels: pixels per forward pass: the tile size under ``auto`` and how many tiles share a batch.
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
        return torch.cat([self._one(image[None], tile) for image in images])

    def _one(self, image: torch.Tensor, tile: tuple[int, int]) -> torch.Tensor:
        height, width = image.shape[-2:]
        rows, cols = tile_spans(height, tile[0], self.overlap), tile_spans(width, tile[1], self.overlap)
        by_size: dict[tuple[int, int], list[tuple[int, int, int, int]]] = defaultdict(list)
        for r0, r1 in rows:
            for c0, c1 in cols:
                by_size[(r1 - r0, c1 - c0)].append((r0, r1, c0, c1))
        total: torch.Tensor | None = None
        weight_sum = torch.zeros(height, width, dtype=torch.float32, device=image.device)
        for (h, w), boxes in by_size.items():
            per_batch = max(1, self.max_pixels // (h * w))
            for i in range(0, len(boxes), per_batch):
                chunk = boxes[i : i + per_batch]
                probs = self.scores_fn(torch.cat([image[..., r0:r1, c0:c1] for r0, r1, c0, c1 in chunk])).float().softmax(dim=1)
                if total is None:
                    total = torch.zeros(1, probs.shape[1], height, width, dtype=torch.float32, device=image.device)
                for p, (r0, r1, c0, c1) in zip(probs, chunk):
                    window = torch.outer(axis_weights(r0, r1, height, self.overlap, self.margin),
                                         axis_weights(c0, c1, width, self.overlap, self.margin)).float().to(image.device)
                    total[0, :, r0:r1, c0:c1] += p * window
                    weight_sum[r0:r1, c0:c1] += window
        assert total is not None
        # In place: at 100 megapixels each (1, K, H, W) float32 copy is K * 400 MB, the largest buffer of the run.
        total.div_(weight_sum)  # every pixel has a positive weight (check_tiling)
        del weight_sum
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
