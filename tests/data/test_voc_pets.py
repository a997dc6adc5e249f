import re

import numpy as np
import pytest
import torch
from PIL import Image

from tconvseg.data import PETS, VOC, DatasetError, DatasetNotFoundError, PetsDataset, VOCDataset
from tests.helpers.fakes import make_pets_tree, make_voc_tree, write_png


def test_voc_splits_and_contract(tmp_path):
    make_voc_tree(tmp_path, n_train=3, n_val=2, size=(10, 14))
    train, val = VOCDataset(tmp_path, "train"), VOCDataset(tmp_path, "val")
    assert (len(train), len(val), len(VOCDataset(tmp_path, "trainval"))) == (3, 2, 5)
    assert len(VOCDataset(tmp_path, "train", download=True)) == 3  # present: no download attempted
    image, mask = val[1]
    assert image.shape == (3, 10, 14) and image.dtype == torch.float32
    assert mask.shape == (10, 14) and mask.dtype == torch.int64
    # palette PNG indices are the labels, 255 (boundary) included
    assert torch.equal(mask, torch.from_numpy(np.array(Image.open(val.pairs[1][1]))).long())
    assert set(mask.unique().tolist()) <= {*range(VOC.num_classes), VOC.ignore_index}


def test_voc_missing_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"VOC 2012 not found under .*VOCdevkit/VOC2012.*data.dataset.download=true"):
        VOCDataset(tmp_path, "train")


def test_voc_missing_split_list_and_unknown_split(tmp_path):
    make_voc_tree(tmp_path)
    (tmp_path / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"split list .*val.txt does not exist"):
        VOCDataset(tmp_path, "val")
    with pytest.raises(DatasetError, match="VOC: .*'bogus'"):
        VOCDataset(tmp_path, "bogus")


def test_voc_image_without_mask(tmp_path):
    make_voc_tree(tmp_path)
    missing = tmp_path / "VOCdevkit/VOC2012/SegmentationClass/2007_000001.png"
    missing.unlink()
    with pytest.raises(DatasetNotFoundError, match=rf"label file\(s\) .*{re.escape(str(missing))}"):
        VOCDataset(tmp_path, "train")


def test_voc_out_of_range_label(tmp_path):
    make_voc_tree(tmp_path, size=(10, 14))
    label = tmp_path / "VOCdevkit/VOC2012/SegmentationClass/2008_000000.png"
    write_png(label, np.full((10, 14), 21, np.uint8), palette=VOC.palette)
    ds = VOCDataset(tmp_path, "val")  # lazily decoded: the index is fine
    with pytest.raises(DatasetError, match=rf"{re.escape(str(label))} contains value\(s\) \[21\]"):
        ds[0]


def test_pets_trimap_mapping(tmp_path):
    make_pets_tree(tmp_path, n_trainval=6, n_test=2, size=(10, 14))
    test = PetsDataset(tmp_path, "test")
    assert len(test) == 2 and test.info is PETS
    assert len(PetsDataset(tmp_path, "test", download=True)) == 2  # present: no download attempted
    image, mask = test[0]
    trimap = torch.from_numpy(np.array(Image.open(test.pairs[0][1]))).long()
    assert image.shape == (3, 10, 14) and mask.dtype == torch.int64
    assert torch.equal(mask, trimap - 1)  # 1/2/3 -> pet/background/border = 0/1/2


def test_pets_val_split_is_seeded_and_held_out(tmp_path):
    make_pets_tree(tmp_path, n_trainval=20, n_test=1, size=(6, 6))
    def names(ds):
        return [p[0].name for p in ds.pairs]

    train = names(PetsDataset(tmp_path, "train", val_fraction=0.25))
    val = names(PetsDataset(tmp_path, "val", val_fraction=0.25))
    assert len(val) == 5 and len(train) == 15 and not set(train) & set(val)
    assert sorted(train + val) == sorted(names(PetsDataset(tmp_path, "trainval")))
    assert names(PetsDataset(tmp_path, "val", val_fraction=0.25)) == val  # deterministic
    assert names(PetsDataset(tmp_path, "val", val_fraction=0.25, seed=1)) != val


def test_pets_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"Oxford-IIIT Pet not found under .*data.dataset.download=true"):
        PetsDataset(tmp_path, "train")
    make_pets_tree(tmp_path, n_trainval=4, n_test=1, size=(6, 6))
    with pytest.raises(DatasetError, match="split 'validation' is unknown"):
        PetsDataset(tmp_path, "validation")
    trimap = tmp_path / "oxford-iiit-pet/annotations/trimaps/Abyssinian_test0.png"
    write_png(trimap, np.zeros((6, 6), np.uint8))
    with pytest.raises(DatasetError, match=rf"{re.escape(str(trimap))} contains value\(s\) \[0\].*trimap values 1"):
        PetsDataset(tmp_path, "test")[0]
    (tmp_path / "oxford-iiit-pet/images/Abyssinian_test0.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"image file\(s\) listed in .*test.txt.*Abyssinian_test0.jpg"):
        PetsDataset(tmp_path, "test")
