"""data=folder: your own images/ and masks/ folders, with the same up-front checks and errors as CamVid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tconvseg.data import DatasetError, DatasetInfo, DatasetNotFoundError, FolderDataset
from tconvseg.training.builders import build_datamodule
from tests.helpers.configs import compose_cfg
from tests.helpers.fakes import make_folder_tree, write_png

INFO = DatasetInfo("mine", ("sky", "road", "car"), 255, ((0, 0, 255), (128, 64, 128), (255, 0, 0)))


def test_the_folder_option_loads_pairs_with_the_classes_of_the_config(tmp_path):
    root = make_folder_tree(tmp_path / "mine", {"train": 4, "val": 2})
    overrides = [
        "data=folder", f"data.dataset.root={root}", "data.num_workers=0",
        "data.info.class_names=[sky,road,car]", "data.info.palette=[[0,0,255],[128,64,128],[255,0,0]]",
    ]
    datamodule = build_datamodule(compose_cfg("train", tmp_path, overrides))
    datamodule.setup("fit")
    assert datamodule.info.class_names == ("sky", "road", "car") and datamodule.info.palette[2] == (255, 0, 0)
    images, masks = next(iter(datamodule.train_dataloader()))
    assert images.shape == (4, 3, 30, 40) and masks.shape == (4, 30, 40)
    assert set(masks.unique().tolist()) <= {0, 1, 2, 255}
    image, mask = datamodule.dataset("val")[1]
    expected = np.array(Image.open(root / "masks" / "val" / "img_001.png"))
    assert np.array_equal(mask.numpy(), expected)


@pytest.mark.parametrize("cache", [True, False])
def test_reads_the_same_pairs_with_and_without_cache(tmp_path, cache):
    root = make_folder_tree(tmp_path)
    dataset = FolderDataset(root, "train", info=INFO, cache=cache)
    assert len(dataset) == 4 and [p[0].name for p in dataset.pairs] == [f"img_{i:03d}.jpg" for i in range(4)]
    assert np.array_equal(dataset[3][1].numpy(), np.array(Image.open(root / "masks" / "train" / "img_003.png")))


def test_a_registered_dataset_name_gives_its_classes(tmp_path):
    """``data.info: camvid`` in a folder config: your images, CamVid's classes (e.g. to score a CamVid model)."""
    root = make_folder_tree(tmp_path / "mine", {"val": 1})  # its masks use 255 for void: not read here
    overrides = ["data=folder", f"data.dataset.root={root}", "data.info=camvid", "data.dataset.validate=false"]
    datamodule = build_datamodule(compose_cfg("eval", tmp_path, overrides))
    dataset = datamodule.dataset("val")
    assert dataset.info.name == datamodule.info.name == "camvid" and dataset.info.num_classes == 11


def test_a_missing_folder_names_the_layout_and_the_override(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"directory .*images/test does not exist.*masks/test/.*data.dataset.root="):
        FolderDataset(make_folder_tree(tmp_path), "test", info=INFO)


def test_an_image_without_a_mask_is_named(tmp_path):
    root = make_folder_tree(tmp_path)
    (root / "masks" / "train" / "img_002.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) in .*images/train have no label in .*masks/train: img_002.jpg"):
        FolderDataset(root, "train", info=INFO)


def test_a_mask_without_an_image_is_named(tmp_path):
    root = make_folder_tree(tmp_path)
    (root / "images" / "train" / "img_001.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 label\(s\) in .*masks/train have no image .*: img_001.png"):
        FolderDataset(root, "train", info=INFO)


def test_a_mask_of_another_size_is_named(tmp_path):
    root = make_folder_tree(tmp_path)
    write_png(root / "masks" / "train" / "img_001.png", np.zeros((30, 41), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"label .*img_001.png is 41x30 \(WxH\) but its image .*img_001.jpg is 40x30"):
        FolderDataset(root, "train", info=INFO)


def test_labels_out_of_range_are_named_up_front(tmp_path):
    root = make_folder_tree(tmp_path)
    write_png(root / "masks" / "train" / "img_002.png", np.full((30, 40), 7, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"img_002.png contains value\(s\) \[7\] .*class indices 0..2 or 255"):
        FolderDataset(root, "train", info=INFO)


def test_out_of_range_labels_fail_on_reading_when_not_validated_up_front(tmp_path):
    root = make_folder_tree(tmp_path)
    write_png(root / "masks" / "train" / "img_002.png", np.full((30, 40), 7, dtype=np.uint8))
    dataset = FolderDataset(root, "train", info=INFO, validate=False)
    dataset[1]  # a good pair still reads
    with pytest.raises(DatasetError, match=r"img_002.png contains value\(s\) \[7\]"):
        dataset[2]


def test_an_unreadable_image_is_named(tmp_path):
    root = make_folder_tree(tmp_path)
    (root / "images" / "train" / "img_000.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    with pytest.raises(DatasetError, match=r"cannot decode image file .*img_000.jpg"):
        FolderDataset(root, "train", info=INFO)


def test_a_colour_mask_is_refused(tmp_path):
    root = make_folder_tree(tmp_path)
    write_png(root / "masks" / "train" / "img_000.png", np.zeros((30, 40, 3), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"img_000.png has PIL mode 'RGB' .*expected a single-channel 8-bit image"):
        FolderDataset(root, "train", info=INFO)


def test_an_empty_split_is_named(tmp_path):
    root = make_folder_tree(tmp_path)
    for folder in ("images", "masks"):
        (root / folder / "test").mkdir()
    with pytest.raises(DatasetError, match=r"folder dataset split 'test' under .* is empty"):
        FolderDataset(root, "test", info=INFO)
