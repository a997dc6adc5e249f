"""Tiled inference: every pixel weighted once, exact where the receptive field fits, edge tiles unpadded, TTA per tile."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tconvseg.inference.tiling import TiledInference, auto_tile, axis_weights, check_tiling, tile_spans, tiling_options
from tconvseg.inference.tta import TestTimeAugmentation


def small_field_net() -> nn.Module:
    """Two 3x3 convolutions: a receptive-field radius of 2 pixels."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 5, 3, padding=1)).eval()


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 300), tile=st.integers(4, 120), data=st.data())
def test_tiles_cover_every_pixel_with_a_positive_weight(length, tile, data):
    overlap = data.draw(st.integers(0, tile - 1))
    margin = data.draw(st.integers(0, overlap // 2))
    spans = tile_spans(length, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length and all(0 < b - a <= tile for a, b in spans)
    total = torch.zeros(length, dtype=torch.float64)
    for a, b in spans:
        total[a:b] += axis_weights(a, b, length, overlap, margin)
    assert (total > 0).all()  # normalised by this sum, every pixel's weights add up to one


def test_tiled_equals_whole_where_the_receptive_field_fits():
    net, x = small_field_net(), torch.randn(2, 3, 97, 131)
    whole = net(x).log_softmax(1)
    with torch.no_grad():
        for tile, overlap, margin in (((40, 50), 8, 2), ((33, 33), 4, 2), ((64, 64), 16, 4)):
            tiled = TiledInference(net, tiles=tile, overlap=overlap, margin=margin)(x)
            torch.testing.assert_close(tiled, whole.detach(), atol=1e-5, rtol=1e-5)


def test_a_margin_below_the_receptive_field_shows_at_the_seams():
    net, x = small_field_net(), torch.randn(1, 3, 60, 60)
    with torch.no_grad():
        whole = net(x).log_softmax(1)
        tiled = TiledInference(net, tiles=(32, 32), overlap=4, margin=0)(x)
    assert not torch.allclose(tiled, whole, atol=1e-4)  # the exactness above is not vacuous


def test_edge_tiles_run_as_they_are_and_batch_by_size():
    net, seen = small_field_net(), []

    def recording(images):
        seen.append(tuple(images.shape))
        return net(images)

    with torch.no_grad():
        TiledInference(recording, tiles=(40, 50), overlap=8, margin=2, max_pixels=2 * 40 * 50)(torch.randn(1, 3, 97, 131))
    rows, cols = tile_spans(97, 40, 8), tile_spans(131, 50, 8)
    sizes = {(b - a, d - c) for a, b in rows for c, d in cols}
    assert {s[2:] for s in seen} == sizes and (97 - 64, 131 - 84) in sizes  # smaller edge tiles, unpadded
    assert all(s[0] <= 2 for s in seen) and sum(s[0] for s in seen) == len(rows) * len(cols)


def test_tta_runs_on_each_tile():
    net, x = small_field_net(), torch.randn(1, 3, 70, 90)
    flip = TestTimeAugmentation(net, "flip")
    with torch.no_grad():
        torch.testing.assert_close(TiledInference(flip, tiles=(40, 40), overlap=8, margin=2)(x), flip(x), atol=1e-5, rtol=1e-5)


def test_auto_tiles_only_above_the_budget():
    assert auto_tile(100, 100, 10_000, 16) is None
    assert auto_tile(4000, 6000, 4_000_000, 64) == (2000, 2000)
    calls = []
    tiled = TiledInference(lambda images: calls.append(images.shape) or torch.zeros(images.shape[0], 2, *images.shape[2:]),
                           tiles="auto", overlap=8, max_pixels=64 * 64)
    tiled(torch.zeros(1, 3, 64, 64))
    assert calls == [torch.Size([1, 3, 64, 64])]
    calls.clear()
    tiled(torch.zeros(1, 3, 100, 130))
    assert len(calls) > 1 and all(s[2] * s[3] * s[0] <= 64 * 64 for s in calls)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tiles": [0, 64]}, r"tiles=\[0, 64\] is invalid"),
        ({"tiles": "big"}, r"tiles='big' is invalid"),
        ({"tiles": [64, 64], "tile_overlap": 64}, r"tile_overlap=64 .* is invalid"),
        ({"tiles": [64, 64], "tile_overlap": 8, "tile_margin": 5}, r"tile_margin=5"),
        ({"tiles": "auto", "max_pixels_per_batch": 0}, r"max_pixels_per_batch=0 is invalid"),
    ],
)
def test_bad_tiling_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        tiling_options(options)


def test_check_tiling_accepts_what_it_should():
    assert check_tiling([64, 80], 16, 8) == (64, 80)
    assert TiledInference(small_field_net(), tiles=[64, 64], overlap=16).record() == {"tiles": [64, 64], "overlap": 16, "margin": 4,
                                                                                        "max_pixels": 4_000_000}
