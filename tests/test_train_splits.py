"""Training on several splits at once (``data.splits.train=[train,val]``): what is trained on, what is stored, what eval says."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from tconvseg.data import CamVidDataset, SegmentationDataModule
from tconvseg.data.splits.holdout import HoldoutOptions
from tconvseg.tasks.evaluate import evaluate
from tconvseg.tasks.train import train
from tconvseg.training.checkpoints import CKPT_RUN_IDENTITY
from tests.helpers.configs import CHEAP, compose_cfg
from tests.helpers.fakes import make_camvid_tree

ONE_EPOCH = ["data=camvid", "model=tiny", *CHEAP, "trainer.max_epochs=1", "data.batch_size=2", "validate_best=false"]


def _module(root, **kwargs) -> SegmentationDataModule:
    def dataset(split, transforms=None):
        return CamVidDataset(root, split=split, transforms=transforms, cache=False)

    return SegmentationDataModule(dataset, "camvid", **kwargs)


def test_the_train_role_holds_every_item_of_the_listed_splits_in_order(tmp_path):
    root = tmp_path / "CamVid"
    make_camvid_tree(root, n_train=4, n_val=3, n_test=2, size=(24, 32))
    dm = _module(root, splits={"train": ["train", "val"]})
    expected = CamVidDataset(root, "train").names() + CamVidDataset(root, "val").names()
    assert dm.dataset("train").names() == expected and len(expected) == 7
    assert dm.train_splits == ["train", "val"] and dm.splits["train"] == "train+val"
    assert dm.dataset("val").names() == CamVidDataset(root, "val").names()  # val stays itself
    image, mask = dm.dataset("train")[6]  # the last val frame, served with the training transforms
    assert image.dtype == torch.float32 and mask.dtype == torch.int64
    pooled_files = [root / f"{split}annot" / f"{name}.png" for split in ("train", "val") for name in CamVidDataset(root, split).names()]
    assert torch.allclose(dm.class_weights(), by_hand_median_frequency(pooled_files), rtol=1e-6)
    assert torch.allclose(dm.class_weights("median_frequency_sqrt"), by_hand_median_frequency(pooled_files).sqrt(), rtol=1e-6)
    train_files = [root / "trainannot" / f"{name}.png" for name in CamVidDataset(root, "train").names()]
    assert torch.allclose(_module(root).class_weights(), by_hand_median_frequency(train_files), rtol=1e-6)


def by_hand_median_frequency(mask_files: list, num_classes: int = 11) -> torch.Tensor:
    """Median-frequency weights written out with numpy from the label files themselves (Eigen & Fergus 2015):
    freq(c) = pixels of c / pixels of the images holding c; w(c) = median(freq) / freq(c); 0 where c never appears."""
    pixels, image_pixels = np.zeros(num_classes), np.zeros(num_classes)
    for path in mask_files:
        labels = np.asarray(Image.open(path))
        for c in range(num_classes):
            count = int((labels == c).sum())
            if count:
                pixels[c] += count
                image_pixels[c] += labels.size
    seen = pixels > 0
    freq = pixels[seen] / image_pixels[seen]
    weights = np.zeros(num_classes)
    weights[seen] = np.median(freq) / freq
    return torch.tensor(weights, dtype=torch.float32)


def test_class_weights_under_a_holdout_come_from_the_kept_masks_only(tmp_path):
    root = tmp_path / "CamVid"
    make_camvid_tree(root, n_train=6, n_val=3, n_test=0, size=(24, 32), groups=("0001TP", "0006R0", "0016E5"))
    dm = _module(root, holdout=HoldoutOptions.sequence(["0006R0"]))  # pool train + val
    kept = [root / f"{split}annot" / f"{name}.png" for split in ("train", "val") for name in CamVidDataset(root, split).names()
            if not name.startswith("0006R0")]
    assert len(kept) == 6
    expected = by_hand_median_frequency(kept)
    assert torch.allclose(dm.class_weights(), expected, rtol=1e-6)
    assert torch.allclose(dm.class_weights("median_frequency_sqrt"), expected.sqrt(), rtol=1e-6)
    everything = by_hand_median_frequency([*kept, *(root / f"{s}annot" / f"{n}.png" for s in ("train", "val")
                                                    for n in CamVidDataset(root, s).names() if n.startswith("0006R0"))])
    assert not torch.allclose(expected, everything)  # the held-out masks would change them: the check can fail


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        ({"train": []}, r"data.splits.train=\[\] is invalid; expected a split name or a list of distinct split names"),
        ({"train": ["train", "train"]}, r"data.splits.train=\['train', 'train'\] is invalid"),
        ({"val": ["val", "test"]}, r"data.splits.val=\['val', 'test'\] is invalid; expected one split name"),
    ],
)
def test_bad_train_split_lists_are_named(tmp_path, splits, message):
    with pytest.raises(ValueError, match=message):
        _module(tmp_path, splits=splits)


def test_under_a_holdout_the_list_must_be_the_pool_and_the_holdout_decides(tmp_path):
    root = tmp_path / "CamVid"
    make_camvid_tree(root, n_train=6, n_val=2, n_test=0, size=(24, 32), groups=("0001TP", "0006R0", "0016E5"))
    with pytest.raises(ValueError, match=r"data.splits.train=\['train', 'val'\] and data.holdout_pool=\['train'\] differ"):
        _module(root, splits={"train": ["train", "val"]}, holdout=HoldoutOptions.sequence(["0006R0"], pool=["train"]))
    dm = _module(root, splits={"train": ["train", "val"]}, holdout=HoldoutOptions.sequence(["0006R0"]))  # pool [train, val]
    trained = dm.dataset("train").names()
    assert not dm.pools_train_splits and len(trained) == 5 and not any(n.startswith("0006R0") for n in trained)
    assert dm.dataset("val").names() == ["0006R0_train_0001", "0006R0_train_0004", "0006R0_val_0001"]


def test_a_run_on_train_and_val_logs_and_stores_it_and_eval_says_val_was_trained_on(tmp_path, caplog):
    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=4, n_val=2, n_test=0, size=(24, 32))
    caplog.set_level(logging.INFO, logger="tconvseg")
    _, objects = train(compose_cfg("train", tmp_path, [*ONE_EPOCH, "data.splits.train=[train,val]"]))
    assert objects["trainer"].global_step == 3  # 6 frames at batch 2: val's frames were trained on
    assert "Training on the splits ['train', 'val'] together (6 items); validation on 'val', one of them, measures fit" in caplog.text
    last = objects["cfg"].paths.output_dir + "/checkpoints/last.ckpt"
    identity = torch.load(last, weights_only=True)[CKPT_RUN_IDENTITY]
    assert identity["data"]["train_splits"] == ["train", "val"]

    caplog.clear()
    out = tmp_path / "val.json"
    evaluate(compose_cfg("eval", tmp_path, ["data=camvid", "trainer=cpu", "split=val", "samples=0", f"ckpt_path={last}", f"output_json={out}"]))
    assert "split=val: " in caplog.text and "trained on 2 of the 2 scored items" in caplog.text
    report = json.loads(out.read_text())
    assert report["trained_on_split"] is True and (report["trained_on_items"], report["scored_items"]) == (2, 2)
    assert identity["train_splits"] == ["train", "val"] and "stored training splits" in report["trained_on_from"]


def test_a_single_split_run_keeps_its_identity_as_before(tmp_path):
    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=4, n_val=2, n_test=0, size=(24, 32))
    _, objects = train(compose_cfg("train", tmp_path, ONE_EPOCH))
    identity = torch.load(objects["best_checkpoint"], weights_only=True)[CKPT_RUN_IDENTITY]
    assert "train_splits" not in identity["data"]
