"""Median-frequency class weights, checked against counts worked out by hand."""

import numpy as np
import pytest
import torch

from tconvseg.data import CAMVID, CamVidDataset, SegmentationDataModule, class_pixel_counts, median_frequency_weights
from tests.helpers.fakes import make_camvid_tree, write_png

VOID = CAMVID.ignore_index


def hand_labels() -> tuple[np.ndarray, np.ndarray]:
    """Two 4x4 maps. A: 8 px Sky(0), 4 px Building(1), 4 px void. B: 12 px Sky, 4 px Pole(2).

    pixels = [20, 4, 4]; pixels of the images containing each class = [32, 16, 16];
    freq = [0.625, 0.25, 0.25]; median = 0.25; weights = [0.4, 1, 1], unseen classes 0.
    """
    a = np.zeros((4, 4), np.uint8)
    a[2, :] = 1
    a[3, :] = VOID
    b = np.zeros((4, 4), np.uint8)
    b[:, 3] = 2
    return a, b


EXPECTED = torch.tensor([0.4, 1.0, 1.0] + [0.0] * 8)


def test_counts_and_weights_by_hand():
    masks = [torch.from_numpy(m) for m in hand_labels()]
    pixels, image_pixels = class_pixel_counts(masks, 11)
    assert pixels[:3].tolist() == [20, 4, 4] and image_pixels[:3].tolist() == [32, 16, 16]
    assert pixels[3:].sum() == 0
    with pytest.warns(UserWarning, match="never seen.*'Road'"):
        weights = median_frequency_weights(masks, 11, CAMVID.class_names)
    assert weights.dtype == torch.float32 and torch.allclose(weights, EXPECTED)
    with pytest.warns(UserWarning, match="never seen"):
        int64_weights = median_frequency_weights([m.long() for m in masks], 11)  # non-uint8 path agrees
    assert torch.allclose(int64_weights, EXPECTED)


def test_no_labelled_pixel_at_all():
    with pytest.raises(ValueError, match="no pixel of any class"):
        median_frequency_weights([torch.full((2, 2), VOID, dtype=torch.uint8)], 11)


def test_datamodule_class_weights_use_train_masks_at_label_resolution(tmp_path):
    make_camvid_tree(tmp_path, n_train=2, n_val=1, n_test=0, size=(4, 4), list_files=None)
    for name, labels in zip(sorted(p.name for p in (tmp_path / "trainannot").iterdir()), hand_labels()):
        write_png(tmp_path / "trainannot" / name, labels)
    dm = SegmentationDataModule(
        dataset=lambda split, transforms: CamVidDataset(tmp_path, split, transforms),
        info="camvid",
        train_transforms={"scale": 0.5},  # must not matter: weights come from raw masks
    )
    with pytest.warns(UserWarning, match="never seen"):
        weights = dm.class_weights()
    assert weights.shape == (11,) and torch.allclose(weights, EXPECTED)
    assert torch.equal(dm.class_weights("uniform"), torch.ones(11))
    assert torch.allclose(dm.class_weights("median_frequency_sqrt"), EXPECTED.sqrt())  # same order, half the log-spread
    with pytest.raises(ValueError, match="unknown class weight method 'inverse'"):
        dm.class_weights("inverse")
