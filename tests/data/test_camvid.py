import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tconvseg.data import CAMVID, CamVidDataset, camvid_index
from tests.helpers.fakes import make_camvid_tree


def _real_camvid() -> Path:
    """The real CamVid copy: $TCONVSEG_DATA_DIR/CamVid, else ../shared/datasets/CamVid beside the checkout."""
    candidates = [Path(__file__).resolve().parents[3] / "shared" / "datasets" / "CamVid"]
    if os.environ.get("TCONVSEG_DATA_DIR"):
        candidates.insert(0, Path(os.environ["TCONVSEG_DATA_DIR"]) / "CamVid")
    return next((c for c in candidates if (c / "train").is_dir()), candidates[-1])


REAL_CAMVID = _real_camvid()


@pytest.mark.parametrize("list_files", ["relative", "absolute", None])
def test_index_from_list_files_or_folders(tmp_path, list_files):
    make_camvid_tree(tmp_path, n_train=4, n_val=2, n_test=1, list_files=list_files)
    pairs = camvid_index(tmp_path, "train")
    assert len(pairs) == 4
    for image, label in pairs:
        assert image.parent == tmp_path / "train" and label.parent == tmp_path / "trainannot"
        assert image.name == label.name and image.is_file()


def test_items_follow_the_contract(tmp_path):
    make_camvid_tree(tmp_path, n_train=3, size=(12, 16))
    ds = CamVidDataset(tmp_path, "train")
    assert len(ds) == 3 and ds.info is CAMVID
    image, mask = ds[1]
    assert image.shape == (3, 12, 16) and image.dtype == torch.float32
    assert mask.shape == (12, 16) and mask.dtype == torch.int64
    assert 0.0 <= image.min() and image.max() <= 1.0
    raw = np.array(Image.open(ds.pairs[1][1]))
    assert torch.equal(mask, torch.from_numpy(raw).long())
    assert type(image) is torch.Tensor and type(mask) is torch.Tensor  # no tv_tensors leak out


def test_cache_and_lazy_decoding_agree(tmp_path):
    make_camvid_tree(tmp_path, n_train=3, size=(12, 16))
    cached, lazy = CamVidDataset(tmp_path, "val", cache=True), CamVidDataset(tmp_path, "val", cache=False)
    for i in range(len(cached)):
        for a, b in zip(cached[i], lazy[i]):
            assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(cached.raw_masks(), lazy.raw_masks()))


def test_returned_masks_do_not_alias_the_cache(tmp_path):
    make_camvid_tree(tmp_path, n_train=1, n_val=0, n_test=0, size=(8, 8))
    ds = CamVidDataset(tmp_path, "train")
    _, mask = ds[0]
    mask.fill_(3)
    assert not torch.equal(ds[0][1], mask)


@pytest.mark.skipif(not REAL_CAMVID.is_dir(), reason="real CamVid not present on this machine")
def test_real_camvid_smoke():
    ds = CamVidDataset(REAL_CAMVID, "train", cache=False)
    assert len(ds) == 367
    for i in (0, len(ds) - 1):
        image, mask = ds[i]
        assert image.shape == (3, 360, 480) and mask.shape == (360, 480)
        assert int(mask.min()) >= 0 and int(mask.max()) <= CAMVID.ignore_index
