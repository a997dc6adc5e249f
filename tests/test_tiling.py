"""Tiled inference: every pixel weighted once, exact where the receptive field fits, edge tiles unpadded, TTA per tile."""

from __future__ import annotations

import csv

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


def whole_map_reference(scores_fn, image, tile, overlap, margin, max_pixels):
    """The tiled log-probabilities as computed before bands: one (1, K, H, W) map for the whole image (tiles of one size
    batched together across the image, accumulated in that order)."""
    height, width = image.shape[-2:]
    rows, cols = tile_spans(height, tile[0], overlap), tile_spans(width, tile[1], overlap)
    by_size = {}
    for r0, r1 in rows:
        for c0, c1 in cols:
            by_size.setdefault((r1 - r0, c1 - c0), []).append((r0, r1, c0, c1))
    total, weight_sum = None, torch.zeros(height, width)
    for (h, w), boxes in by_size.items():
        per_batch = max(1, max_pixels // (h * w))
        for i in range(0, len(boxes), per_batch):
            chunk = boxes[i : i + per_batch]
            probs = scores_fn(torch.cat([image[..., r0:r1, c0:c1] for r0, r1, c0, c1 in chunk])).float().softmax(dim=1)
            if total is None:
                total = torch.zeros(1, probs.shape[1], height, width)
            for p, (r0, r1, c0, c1) in zip(probs, chunk):
                window = torch.outer(axis_weights(r0, r1, height, overlap, margin), axis_weights(c0, c1, width, overlap, margin)).float()
                total[0, :, r0:r1, c0:c1] += p * window
                weight_sum[r0:r1, c0:c1] += window
    return (total / weight_sum).clamp_min(torch.finfo(torch.float32).tiny).log()


def wide_field_net() -> nn.Module:
    """A receptive field far wider than any margin below: tiles and the whole image disagree, seams show, and the
    banded result must still equal the whole-map one."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 5, padding=4, dilation=2), nn.ReLU(),
                         nn.Conv2d(8, 7, 3, padding=1)).eval()


@pytest.mark.parametrize(
    ("size", "tile", "overlap", "margin", "max_pixels"),
    [
        ((97, 131), (40, 50), 8, 2, 4_000_000),   # edge tiles smaller than the rest on both axes
        ((97, 131), (40, 50), 8, 2, 1),           # the same, one tile per batch
        ((120, 100), (40, 50), 8, 0, 2 * 40 * 50),  # rows fit exactly but columns do not; two tiles per batch
        ((64, 203), (30, 30), 20, 5, 1),           # overlap above half a tile: a pixel under three rows of tiles
        ((33, 47), (64, 64), 16, 4, 4_000_000),     # one tile larger than the image
        ((150, 61), (17, 61), 4, 2, 17 * 61),       # one column of tiles, many thin bands
    ],
)
def test_bands_equal_the_whole_map(size, tile, overlap, margin, max_pixels):
    net, x = wide_field_net(), torch.randn(2, 3, *size)
    tiled = TiledInference(net, tiles=tile, overlap=overlap, margin=margin, max_pixels=max_pixels)
    with torch.no_grad():
        reference = torch.cat([whole_map_reference(net, image[None], tile, overlap, margin, max_pixels) for image in x])
        labels = tiled.labels(x)
        whole = tiled(x)
        pieces = [(top, bottom) for top, bottom, _ in tiled.bands(x[:1])]
    assert labels.dtype == torch.uint8 and labels.shape == (2, *size)
    assert torch.equal(labels.long(), reference.argmax(dim=1))
    torch.testing.assert_close(whole, reference, atol=1e-6, rtol=1e-6)
    assert torch.equal(whole.argmax(dim=1), reference.argmax(dim=1))
    if max_pixels == 1:  # batches of one tile in both: the same sums in the same order, to the last bit
        assert torch.equal(whole, reference)
    assert pieces[0][0] == 0 and pieces[-1][1] == size[0] and all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))


def test_bands_equal_the_whole_map_with_tta_per_tile():
    net, x = wide_field_net(), torch.randn(1, 3, 90, 110)
    flip = TestTimeAugmentation(net, "multiscale_flip", scales=(0.75, 1.0))
    tiled = TiledInference(flip, tiles=(40, 48), overlap=12, margin=3)
    with torch.no_grad():
        reference = whole_map_reference(flip, x, (40, 48), 12, 3, 4_000_000)
        assert torch.equal(tiled.labels(x).long(), reference.argmax(dim=1))
        torch.testing.assert_close(tiled(x), reference, atol=1e-6, rtol=1e-6)


def test_bands_are_finished_before_the_next_rows_of_tiles_run():
    """Rows leave as soon as no later tile reaches them, in pieces of about one tile, whatever the image's height."""
    events = []

    def scores(images):
        events.append(("tiles", images.shape[2]))
        return torch.zeros(images.shape[0], 4, *images.shape[2:])

    tiled = TiledInference(scores, tiles=(50, 50), overlap=10, max_pixels=50 * 50)
    for top, bottom, rows in tiled.bands(torch.zeros(1, 3, 800, 300)):
        assert rows.shape == (1, 4, bottom - top, 300) and rows.numel() <= 4 * 50 * 50
        events.append(("rows", bottom))
    tile_rows = tile_spans(800, 50, 10)
    finished = [bottom for kind, bottom in events if kind == "rows"]
    assert finished[-1] == 800 and len([e for e in events if e[0] == "tiles"]) == len(tile_rows) * len(tile_spans(300, 50, 10))
    # before the tiles of band b + 1 run, the rows above band b + 1's top are out
    calls_per_band = len(tile_spans(300, 50, 10))
    for b, (top, _) in enumerate(tile_rows[1:], start=1):
        first_call = [i for i, e in enumerate(events) if e[0] == "tiles"][b * calls_per_band]
        assert max(bottom for kind, bottom in events[:first_call] if kind == "rows") == top


@pytest.mark.parametrize("tta", ["none", "flip"])
def test_a_tiled_test_step_scores_band_by_band_as_the_whole_map_did(tta):
    from functools import partial

    from tconvseg.training.system import SegmentationSystem

    def system() -> SegmentationSystem:
        return SegmentationSystem(wide_field_net(), partial(torch.optim.SGD, lr=0.1), num_classes=7, ignore_index=255,
                                  class_weights=[0.5, 1, 2, 1, 0.1, 3, 1], tta={"mode": tta},
                                  tiling={"tiles": [40, 48], "overlap": 12, "margin": 3}).eval()

    banded, whole = system(), system()
    x = torch.randn(2, 3, 70, 90)
    masks = torch.randint(0, 7, (2, 70, 90))
    masks[:, :10] = 255  # some ignored pixels
    with torch.no_grad():
        loss = banded.banded_test(x, masks)
        logits = torch.cat([whole_map_reference(whole.tta, image[None], (40, 48), 12, 3, 4_000_000) for image in x])
        expected = whole.criterion(logits, masks)
        whole.test_metrics.update(logits.argmax(dim=1), masks)
    assert loss is not None
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-5)
    assert torch.equal(banded.test_metrics["iou"].confmat, whole.test_metrics["iou"].confmat)
    assert banded.test_metrics.summary() == whole.test_metrics.summary()
    # where the bands cannot give the same numbers, the step keeps the whole map: masks at another size than the images
    assert banded.banded_test(x, torch.zeros(2, 140, 180, dtype=torch.int64)) is None


def test_tiled_eval_counts_the_confusion_of_the_whole_tiled_map(tmp_path, monkeypatch):
    """``tconvseg-eval tiles=...`` end to end: its confusion matrix (filled band by band, never from a whole map) is
    the one of the argmax of the whole tiled map, image by image."""
    from tconvseg.tasks.evaluate import evaluate
    from tests.helpers.configs import compose_cfg
    from tests.helpers.inference import train_tiny

    ckpt = train_tiny(tmp_path / "train")
    overrides = ["data=synthetic", "trainer=cpu", "data.num_workers=0", f"ckpt_path={ckpt}", "+trainer.enable_progress_bar=false",
                 "split=test", "tiles=[32,40]", "tile_overlap=8", "tile_margin=2", "samples=0", f"output_json={tmp_path / 'eval.json'}"]
    with monkeypatch.context() as patch:
        patch.setattr(TiledInference, "__call__", lambda self, images: pytest.fail("eval built a whole probability map"))
        metrics, objects = evaluate(compose_cfg("eval", tmp_path, overrides))
    system, dataset = objects["model"].eval(), objects["datamodule"].dataset("test")
    counts = torch.zeros(system.num_classes, system.num_classes, dtype=torch.int64)
    with torch.no_grad():
        for image, mask in (dataset[i] for i in range(len(dataset))):
            predicted = whole_map_reference(system.tta, image[None], (32, 40), 8, 2, 4_000_000).argmax(dim=1)[0]
            valid = mask != system.ignore_index
            counts += torch.bincount(mask[valid] * system.num_classes + predicted[valid], minlength=system.num_classes**2).view_as(counts)
    recorded = list(csv.reader((tmp_path / "confusion_matrix_test_last.csv").open()))
    assert torch.equal(torch.tensor([[int(v) for v in row[1:]] for row in recorded[1:]]), counts)
    assert 0 < metrics["test/loss"] < 10
