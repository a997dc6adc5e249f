"""Every kind of bad CamVid input yields a DatasetError whose message names the culprit."""

import re

import numpy as np
import pytest

from tconvseg.data import CamVidDataset, DatasetError, DatasetNotFoundError
from tests.helpers.fakes import make_camvid_tree, write_png

SIZE = (8, 12)


def tree(tmp_path, list_files=None):
    return make_camvid_tree(tmp_path, n_train=3, n_val=1, n_test=0, size=SIZE, list_files=list_files)


def test_missing_root_mentions_layout_download_and_env_var(tmp_path):
    root = tmp_path / "nowhere" / "CamVid"
    with pytest.raises(DatasetNotFoundError) as err:
        CamVidDataset(root, "train")
    msg = str(err.value)
    assert str(root) in msg and "trainannot/" in msg and "data.dataset.download=true" in msg and "TCONVSEG_DATA_DIR" in msg
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)


def test_missing_split_folder(tmp_path):
    tree(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="test'.*" + re.escape(str(tmp_path / "test"))):
        CamVidDataset(tmp_path, "test")


def test_image_without_mask(tmp_path):
    tree(tmp_path)
    (tmp_path / "trainannot" / "0001TP_train_0001.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) in .*train have no label.*0001TP_train_0001.png"):
        CamVidDataset(tmp_path, "train")


def test_mask_without_image(tmp_path):
    tree(tmp_path)
    (tmp_path / "train" / "0001TP_train_0002.png").unlink()
    with pytest.raises(DatasetError, match=r"1 label\(s\) in .*trainannot have no image.*0001TP_train_0002.png"):
        CamVidDataset(tmp_path, "train")


def test_many_orphans_are_listed_up_to_five(tmp_path):
    make_camvid_tree(tmp_path, n_train=8, n_val=0, n_test=0, size=SIZE, list_files=None)
    for label in (tmp_path / "trainannot").iterdir():
        label.unlink()
    with pytest.raises(DatasetError, match=r"8 image\(s\).*\(and 3 more\)"):
        CamVidDataset(tmp_path, "train")


def test_list_file_entry_missing_on_disk(tmp_path):
    tree(tmp_path, list_files="absolute")
    (tmp_path / "trainannot" / "0001TP_train_0000.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"label file\(s\) listed in .*train.txt.*0001TP_train_0000.png"):
        CamVidDataset(tmp_path, "train")


def test_malformed_list_line(tmp_path):
    tree(tmp_path, list_files="relative")
    (tmp_path / "val.txt").write_text("val/a.png\n")
    with pytest.raises(DatasetError, match=r"val.txt, line 1: 'val/a.png' has 1 field"):
        CamVidDataset(tmp_path, "val")


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    tree(tmp_path)
    label = tmp_path / "trainannot" / "0001TP_train_0001.png"
    write_png(label, np.zeros((SIZE[0] + 2, SIZE[1]), np.uint8))
    with pytest.raises(DatasetError) as err:
        CamVidDataset(tmp_path, "train")
    msg = str(err.value)
    assert str(label) in msg and str(tmp_path / "train" / "0001TP_train_0001.png") in msg
    assert "12x10" in msg and "12x8" in msg


def test_out_of_range_label_names_file_and_values(tmp_path):
    tree(tmp_path)
    label = tmp_path / "valannot" / "0001TP_val_0000.png"
    values = np.zeros(SIZE, np.uint8)
    values[0, :3] = [12, 40, 255]
    write_png(label, values)
    with pytest.raises(DatasetError, match=rf"{re.escape(str(label))}.*\[12, 40, 255\].*0..10 or 11 \(void\)"):
        CamVidDataset(tmp_path, "val")


def test_rgb_label_is_rejected(tmp_path):
    tree(tmp_path)
    label = tmp_path / "valannot" / "0001TP_val_0000.png"
    write_png(label, np.zeros((*SIZE, 3), np.uint8))
    with pytest.raises(DatasetError, match=rf"{re.escape(str(label))} has PIL mode 'RGB'"):
        CamVidDataset(tmp_path, "val")


@pytest.mark.parametrize("cache", [True, False])
def test_truncated_image_names_file(tmp_path, cache):
    tree(tmp_path)
    image = tmp_path / "train" / "0001TP_train_0002.png"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    if cache:  # decoded (and so validated) at construction
        with pytest.raises(DatasetError, match=rf"cannot decode image file {re.escape(str(image))}"):
            CamVidDataset(tmp_path, "train", cache=True)
    else:  # construction only checks the index; the item fails when read
        ds = CamVidDataset(tmp_path, "train", cache=False)
        ds[0]
        with pytest.raises(DatasetError, match=rf"cannot decode image file {re.escape(str(image))}"):
            ds[2]


def test_empty_file_is_reported(tmp_path):
    tree(tmp_path)
    label = tmp_path / "trainannot" / "0001TP_train_0000.png"
    label.write_bytes(b"")
    with pytest.raises(DatasetError, match=rf"cannot decode label file {re.escape(str(label))}"):
        CamVidDataset(tmp_path, "train")
