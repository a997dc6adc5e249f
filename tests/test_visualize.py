"""tconvseg.inference.visualize on its own: class colours, palette PNGs, overlays, the inverse normalisation, grids, CSV."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from tconvseg.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD
from tconvseg.data.datasets.info import CAMVID
from tconvseg.inference.visualize import colorize, denormalize, grid, overlay, palette_png, sample_rows, write_confusion_csv

LABELS = np.array([[0, 3, 11], [10, 2, 200]])  # sky, road, void, bicyclist, pole, an unknown value


def test_colorize_uses_the_palette_and_the_ignore_colour_for_the_rest():
    rgb = colorize(torch.as_tensor(LABELS), CAMVID)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert tuple(rgb[0, 0]) == CAMVID.palette[0] and tuple(rgb[0, 1]) == CAMVID.palette[3] and tuple(rgb[1, 0]) == CAMVID.palette[10]
    assert tuple(rgb[0, 2]) == CAMVID.ignore_color and tuple(rgb[1, 2]) == CAMVID.ignore_color


def test_a_palette_png_reads_back_as_the_label_map(tmp_path):
    path = tmp_path / "labels.png"
    palette_png(LABELS, CAMVID).save(path)
    with Image.open(path) as image:
        assert image.mode == "P" and np.array_equal(np.array(image), LABELS)
        assert tuple(image.getpalette()[9:12]) == CAMVID.palette[3]
    with pytest.raises(ValueError, match="label values -1..3 do not fit a palette PNG"):
        palette_png(np.array([[-1, 3]]), CAMVID)


def test_overlay_blends_by_alpha():
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    assert np.array_equal(overlay(image, LABELS, CAMVID, alpha=0.0), image)
    assert np.array_equal(overlay(image, LABELS, CAMVID, alpha=1.0), colorize(LABELS, CAMVID))
    half = overlay(image, LABELS, CAMVID, alpha=0.5)
    assert tuple(half[0, 1]) == tuple(int(np.rint(50 + c / 2)) for c in CAMVID.palette[3])
    with pytest.raises(ValueError, match="differ in size"):
        overlay(np.zeros((4, 4, 3), dtype=np.uint8), LABELS, CAMVID)


def test_denormalize_inverts_the_imagenet_normalisation():
    pixels = torch.randint(0, 256, (3, 5, 7)).float() / 255
    normalised = (pixels - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    back = denormalize(normalised)
    assert back.shape == (5, 7, 3) and np.array_equal(back, (pixels * 255).round().permute(1, 2, 0).numpy().astype(np.uint8))


def test_grid_and_sample_rows_line_the_pictures_up():
    images = torch.zeros(2, 3, 4, 6)
    truths = torch.as_tensor(np.stack([LABELS.repeat(2, 0).repeat(2, 1)] * 2))  # (2, 4, 6): labels at the image size
    rows = sample_rows(images, truths, truths, CAMVID)
    assert len(rows) == 2 and all(p.shape == (4, 6, 3) for row in rows for p in row)
    picture = grid(rows)
    assert picture.size == (3 * 6 + 4 * 4, 14 + 4 + 2 * (4 + 4) + 4)
    with pytest.raises(ValueError, match="every grid row needs 3 pictures"):
        grid([rows[0][:2]])


def test_the_confusion_csv_has_one_row_per_true_class(tmp_path):
    path = tmp_path / "confusion.csv"
    write_confusion_csv(torch.tensor([[5, 1], [0, 7]]), ["a", "b"], path)
    with open(path) as handle:
        assert list(csv.reader(handle)) == [["truth \\ prediction", "a", "b"], ["a", "5", "1"], ["b", "0", "7"]]


def test_grid_scales_large_pictures_down_and_keeps_label_colours():
    """A 3000x2000 row becomes cells of at most 1024 pixels; the label maps keep only their own colours."""
    photo = np.random.default_rng(0).integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    labels = np.zeros((2000, 3000, 3), dtype=np.uint8)
    labels[:, 1500:] = (220, 20, 60)
    picture = grid([[photo, labels, labels]])
    assert 3 * 1024 < picture.width < 3 * 1024 + 40 and picture.height < 683 + 40
    label_cell = np.asarray(picture)[40:600, 1100:2000]
    assert {tuple(c) for c in label_cell.reshape(-1, 3)} <= {(0, 0, 0), (220, 20, 60), (255, 255, 255)}
    assert grid([[photo, labels, labels]], max_side=None).width > 9000
