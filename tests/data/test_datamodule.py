"""The four Hydra configs build working datamodules; loaders honour the batch contract and seeding."""

from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from PIL import Image

from tconvseg.data import DatasetError, DatasetNotFoundError, SegmentationDataModule, synthetic_split
from tconvseg.entry import CONFIG_DIR
from tconvseg.training.builders import build_datamodule
from tests.helpers.fakes import make_camvid_tree, make_pets_tree, make_voc_tree, write_png

CONFIGS = CONFIG_DIR / "data"


def build(name: str, data_dir: Path, **overrides):
    """Compose ``configs/data/<name>.yaml`` under a stand-in ``paths`` node, as the lead's config does."""
    cfg = OmegaConf.create({"paths": {"data_dir": str(data_dir)}, "data": OmegaConf.load(CONFIGS / f"{name}.yaml")})
    for key, value in overrides.items():
        OmegaConf.update(cfg, f"data.{key}", value, merge=False)
    return build_datamodule(cfg)  # as train and eval build it: the holdout keys gathered into one HoldoutOptions


def fake_data(name: str, root: Path) -> None:
    if name == "camvid":
        make_camvid_tree(root / "CamVid", n_train=5, n_val=3, n_test=2, size=(36, 48))
    elif name == "voc":
        make_voc_tree(root, n_train=4, n_val=3, size=(30, 40))
    elif name == "pets":
        make_pets_tree(root, n_trainval=20, n_test=3, size=(30, 40))  # val_fraction 0.1 -> 2 val


# (train image hw, eval image hw, eval mask hw) each config should produce on the fake trees
EXPECTED = {
    "camvid": ((18, 24), (18, 24), (36, 48)),
    "voc": ((320, 320), (320, 320), (320, 320)),
    "pets": ((160, 160), (160, 160), (160, 160)),
    "synthetic": ((64, 96), (64, 96), (64, 96)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_builds_and_every_loader_yields_batches(tmp_path, name):
    fake_data(name, tmp_path)
    dm = build(name, tmp_path, num_workers=0, batch_size=2, eval_batch_size=2)
    assert isinstance(dm, SegmentationDataModule) and dm.num_classes == dm.info.num_classes
    train_hw, eval_hw, mask_hw = EXPECTED[name]
    for stage in ("fit", "validate", "test", "predict"):
        dm.setup(stage)
    loaders = {
        "train": dm.train_dataloader(), "val": dm.val_dataloader(),
        "test": dm.test_dataloader(), "predict": dm.predict_dataloader(),
    }  # fmt: skip
    for role, loader in loaders.items():
        images, masks = next(iter(loader))
        hw = train_hw if role == "train" else eval_hw
        assert images.shape == (2, 3, *hw) and images.dtype == torch.float32, role
        assert masks.shape == (2, *(hw if role == "train" else mask_hw)) and masks.dtype == torch.int64, role
        values = set(masks.unique().tolist())
        assert values <= {*range(dm.num_classes), dm.ignore_index}, (role, values)
    weights = dm.class_weights()
    assert weights.shape == (dm.num_classes,) and (weights >= 0).all()


def test_camvid_config_defaults(tmp_path):
    cfg = OmegaConf.load(CONFIGS / "camvid.yaml")
    assert cfg.train_transforms.scale == 0.5 and cfg.eval_transforms.resize_mask is False
    assert cfg.batch_size == 8 and cfg.info == "camvid"
    dm = build("synthetic", tmp_path, num_workers=0, persistent_workers=True)
    assert dm.persistent_workers is False  # DataLoader rejects persistent workers without workers


def test_eval_loaders_are_deterministic_and_train_follows_seed_everything(tmp_path):
    dm = build("synthetic", tmp_path, batch_size=4)
    dm.setup("fit")
    first = [m for _, m in dm.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, [m for _, m in dm.val_dataloader()]))

    def first_train_batch(seed):
        lightning.seed_everything(seed, verbose=False)
        fresh = build("synthetic", tmp_path, batch_size=4)
        fresh.setup("fit")
        return next(iter(fresh.train_dataloader()))

    a, b, c = first_train_batch(7), first_train_batch(7), first_train_batch(8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_workers_and_persistent_workers(tmp_path):
    dm = build("synthetic", tmp_path, num_workers=2, persistent_workers=True, batch_size=4)
    dm.setup("validate")
    loader = dm.val_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers
    in_process = build("synthetic", tmp_path, num_workers=0)
    in_process.setup("validate")
    with_workers = torch.cat([m for _, m in loader])
    assert torch.equal(with_workers, torch.cat([m for _, m in in_process.val_dataloader()]))


def test_setup_validates_the_stage_splits_early(tmp_path):
    make_camvid_tree(tmp_path / "CamVid", n_train=2, n_val=1, n_test=0, size=(8, 8))
    dm = build("camvid", tmp_path, num_workers=0)
    dm.setup("fit")
    with pytest.raises(DatasetNotFoundError, match="split 'test'"):
        dm.setup("test")
    with pytest.raises(ValueError, match="unknown stage 'train'"):
        dm.setup("train")


def test_configuration_errors_are_named(tmp_path):
    # Hydra wraps constructor errors in InstantiationException, keeping our message.
    with pytest.raises(InstantiationException, match=r"unknown train_transforms option\(s\) \['flip'\]"):
        build("synthetic", tmp_path, train_transforms={"flip": 0.5})
    with pytest.raises(InstantiationException, match=r"unknown splits key\(s\) \['validation'\]"):
        build("synthetic", tmp_path, splits={"validation": "val"})
    dm = build("synthetic", tmp_path, **{"dataset.num_classes": 5})
    with pytest.raises(DatasetError, match="has 5 classes .* info 'synthetic' has 4"):
        dm.setup("fit")


def test_items_of_different_sizes_do_not_batch_silently(tmp_path):
    make_voc_tree(tmp_path, n_train=2, n_val=2, size=(30, 40))
    (tmp_path / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").write_text("2008_000000\n2008_000001\n")
    base = tmp_path / "VOCdevkit/VOC2012"  # make one val pair smaller than the other
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(base / "JPEGImages/2008_000001.jpg")
    write_png(base / "SegmentationClass/2008_000001.png", np.zeros((20, 40), np.uint8))
    dm = build("voc", tmp_path, num_workers=0, eval_transforms={})
    dm.setup("validate")
    with pytest.raises(DatasetError, match="cannot batch items of different sizes"):
        next(iter(dm.val_dataloader()))


def test_plain_python_construction(tmp_path):
    dm = SegmentationDataModule(
        dataset=lambda split, transforms: synthetic_split(split, transforms, num_samples=3, size=(8, 8)),
        info=synthetic_split("train", num_samples=1).info,
        eval_transforms=lambda image, mask: (image, mask),  # a ready transform is used as is
        batch_size=3,
    )
    dm.setup("test")
    images, masks = next(iter(dm.test_dataloader()))
    assert images.shape == (3, 3, 8, 8) and float(images.max()) <= 1.0  # un-normalised: just scaled
