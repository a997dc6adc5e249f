"""Sequence-held-out splits: groups from file names, no held-out item in training, clear errors."""

from pathlib import Path

import pytest
import torch

from tconvseg.data import CamVidDataset, DatasetError, FolderDataset
from tconvseg.data.datasets.info import DatasetInfo
from tconvseg.data.splits.groups import CAMVID_GROUP_PATTERN, group_of, holdout_indices, leave_one_group_out
from tconvseg.data.splits.holdout import HOLDOUT_KEYS, HOLDOUT_SPLIT, HoldoutOptions
from tests.data.test_datamodule import build
from tests.helpers.fakes import make_camvid_tree, make_folder_tree

DRIVES = ("0001TP", "0006R0", "0016E5")


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    # train: 0001TP, 0006R0, 0016E5 in turn (7 items); val: 0016E5 and Seq05VD (4 items)
    root = tmp_path / "data"
    make_camvid_tree(root / "CamVid", n_train=7, n_val=0, n_test=2, size=(12, 16), groups=DRIVES)
    make_camvid_tree(root / "CamVid", n_train=0, n_val=4, n_test=0, size=(12, 16), groups=("0016E5", "Seq05VD"), seed=1)
    return root


@pytest.mark.parametrize(
    ("name", "group"),
    [("0001TP_006690", "0001TP"), ("0016E5_08159", "0016E5"), ("Seq05VD_f00000", "Seq05VD"), ("0006R0_f01950", "0006R0")],
)
def test_camvid_drive_is_read_from_the_file_name(name, group):
    assert group_of(name, CAMVID_GROUP_PATTERN) == group


def test_a_name_without_a_group_is_named():
    with pytest.raises(DatasetError, match=r"'frame001'.*pattern '\^\(\[\^_\]\+\)_'.*group_pattern"):
        group_of("frame001", CAMVID_GROUP_PATTERN)


def test_camvid_dataset_groups_follow_its_items(camvid_root):
    ds = CamVidDataset(camvid_root / "CamVid", "train", cache=False)
    assert ds.groups() == [DRIVES[i % 3] for i in range(7)]
    assert ds.names()[1] == "0006R0_train_0001"


def test_sequence_holdout_never_trains_on_a_held_out_item(camvid_root):
    dm = build("camvid", camvid_root, holdout="sequence", holdout_groups=["0006R0"])
    train, val = dm.dataset("train"), dm.dataset("val")
    pool = [p[0].stem for split in ("train", "val") for p in CamVidDataset(camvid_root / "CamVid", split, cache=False).pairs]
    assert dm.splits["val"] == HOLDOUT_SPLIT
    assert set(val.names()) == {n for n in pool if n.startswith("0006R0_")} and len(val) == 2
    assert not set(train.names()) & set(val.names())
    assert sorted(train.names() + val.names()) == sorted(pool)  # the val split's frames are trained on
    assert all(not n.startswith("0006R0") for n in train.names())
    loader = dm.train_dataloader()  # what training iterates, not the cached dataset object again
    assert sorted(loader.dataset.names()) == sorted(train.names()) and len(list(loader.sampler)) == len(train)
    assert not any(name.startswith("0006R0") for name in loader.dataset.names())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"holdout": "sequence", "holdout_groups": ["0006R0"], "splits": {"train": "holdout"}},
         r"data.splits.train=holdout names 'holdout', the held-out groups of data.holdout=sequence"),
        ({"holdout": "kfold", "holdout_fold": 0, "splits": {"train": ["train", "holdout"]}},
         r"data.splits.train=\[train,holdout\] names 'holdout', the held-out groups of data.holdout=kfold"),
        ({"splits": {"train": "holdout"}}, r"data.splits.train=holdout names 'holdout', a split that exists only under data.holdout"),
        ({"holdout": "sequence", "holdout_groups": ["0006R0"], "holdout_pool": ["train"], "splits": {"train": "val"}},
         r"data.splits.train=val names \['val'\], which data.holdout_pool=\['train'\] does not hold"),
    ],
)
def test_training_on_a_view_that_holds_held_out_items_is_refused(camvid_root, overrides, message):
    with pytest.raises(ValueError, match=message):
        build("camvid", camvid_root, **overrides)


def test_held_out_items_are_served_with_eval_transforms_and_the_right_labels(camvid_root):
    dm = build("camvid", camvid_root, holdout="sequence", holdout_groups=["0006R0"])
    val = dm.dataset("val")
    raw = CamVidDataset(camvid_root / "CamVid", "train", cache=False)
    index = raw.names().index(val.names()[0])
    image, mask = val[0]
    assert image.shape == (3, 6, 8) and mask.shape == (12, 16)  # eval: image at scale 0.5, labels at full size
    assert torch.equal(mask, raw.load_label(index).long())
    images, masks = next(iter(dm.val_dataloader()))
    assert images.shape[0] == 2 and masks.shape == (2, 12, 16)


def test_holdout_pool_of_train_alone_leaves_val_untouched(camvid_root):
    dm = build("camvid", camvid_root, holdout="sequence", holdout_groups=["0006R0"], holdout_pool=["train"])
    assert len(dm.dataset("train")) == 5 and len(dm.dataset("val")) == 2
    dm.splits["test"] = "val"
    assert len(dm.dataset("test")) == 4  # the val folder, as it is


def test_two_held_out_groups(camvid_root):
    dm = build("camvid", camvid_root, holdout="sequence", holdout_groups=["0006R0", "Seq05VD"])
    assert {n.split("_")[0] for n in dm.dataset("val").names()} == {"0006R0", "Seq05VD"}
    assert {n.split("_")[0] for n in dm.dataset("train").names()} == {"0001TP", "0016E5"}


def test_unknown_group_names_the_groups_that_exist(camvid_root):
    dm = build("camvid", camvid_root, holdout="sequence", holdout_groups=["0005VD"])
    with pytest.raises(ValueError, match=r"\['0005VD'\].*0001TP \(3\), 0006R0 \(2\), 0016E5 \(4\), Seq05VD \(2\)"):
        dm.dataset("train")


def test_kfold_leaves_one_group_out_in_sorted_order(camvid_root):
    seen = []
    for fold in range(4):
        dm = build("camvid", camvid_root, holdout="kfold", holdout_fold=fold)
        held = {n.split("_")[0] for n in dm.dataset("val").names()}
        assert len(held) == 1 and not held & {n.split("_")[0] for n in dm.dataset("train").names()}
        seen += held
    assert seen == ["0001TP", "0006R0", "0016E5", "Seq05VD"]


def test_kfold_out_of_range_lists_the_folds(camvid_root):
    dm = build("camvid", camvid_root, holdout="kfold", holdout_fold=4)
    with pytest.raises(ValueError, match=r"holdout_fold=4.*4 folds.*0=0001TP, 1=0006R0, 2=0016E5, 3=Seq05VD"):
        dm.dataset("val")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"holdout": "drive"}, r"data.holdout='drive' is invalid; expected null, sequence or kfold"),
        ({"holdout": "sequence"}, r"holdout=sequence needs data.holdout_groups"),
        ({"holdout": "kfold"}, r"holdout=kfold needs data.holdout_fold"),
        ({"holdout": "kfold", "holdout_fold": 0, "holdout_groups": ["0006R0"]}, r"holdout_groups=\['0006R0'\] applies to data.holdout=sequence"),
        ({"holdout": "sequence", "holdout_groups": ["0006R0"], "holdout_fold": 1}, r"holdout_fold=1 applies to data.holdout=kfold"),
        ({"holdout_groups": ["0006R0"]}, r"are set but data.holdout is null"),
        ({"holdout": "sequence", "holdout_groups": [1600000.0]}, r"holds the number 1600000.0.*0016E5 reads as a number"),
        ({"holdout": "sequence", "holdout_groups": ["0006R0"], "holdout_pool": []}, r"holdout_pool=\[\] is invalid"),
    ],
)
def test_inconsistent_holdout_options_are_named(camvid_root, options, message):
    with pytest.raises(ValueError, match=message):
        build("camvid", camvid_root, **options)


def test_holding_out_everything_is_refused():
    with pytest.raises(ValueError, match="holds out every group"):
        holdout_indices(["a", "a", "b"], ["a", "b"])


def test_leave_one_group_out_needs_two_groups():
    with pytest.raises(ValueError, match="at least two groups"):
        leave_one_group_out(["a", "a"], 0)


def test_split_manifest_lists_the_held_out_items(camvid_root):
    dm = build("camvid", camvid_root, holdout="sequence", holdout_groups=["0006R0"])
    manifest = dm.split_manifest()
    assert manifest["held_out"] == ["0006R0"] and manifest["pool"] == ["train", "val"]
    assert manifest["val_groups"] == "0006R0 (2)"
    assert manifest["train_groups"] == "0001TP (3), 0016E5 (4), Seq05VD (2)"
    assert manifest["val_items"] == ["0006R0_train_0001", "0006R0_train_0004"]
    assert dm.holdout_identity() == {"mode": "sequence", "pool": ["train", "val"], "held_out": ["0006R0"]}
    assert build("camvid", camvid_root).split_manifest() is None


def test_folder_dataset_groups_by_its_pattern(tmp_path):
    make_folder_tree(tmp_path / "mine", {"train": 4, "val": 2})
    info = DatasetInfo(name="mine", class_names=("a", "b", "c"), ignore_index=255, palette=((0, 0, 0), (1, 1, 1), (2, 2, 2)))
    ds = FolderDataset(tmp_path / "mine", "train", info=info, group_pattern=r"(\d)$")
    assert ds.groups() == ["0", "1", "2", "3"]
    with pytest.raises(DatasetError, match="FolderDataset has no groups.*group_pattern"):
        FolderDataset(tmp_path / "mine", "train", info=info).groups()
    with pytest.raises(ValueError, match=r"group_pattern='\(' is not a valid regular expression"):
        FolderDataset(tmp_path / "mine", "train", info=info, group_pattern="(")


@pytest.mark.parametrize(
    "options",
    [
        HoldoutOptions(),
        HoldoutOptions.sequence(["0006R0", "0016E5"]),
        HoldoutOptions.sequence(["0006R0"], pool=["train"]),
        HoldoutOptions("kfold", fold=2, pool=("train", "val")),
    ],
)
def test_holdout_options_travel_as_the_flat_config_keys_and_back(options):
    keys = options.to_config()
    assert set(keys) == set(HOLDOUT_KEYS)
    back = HoldoutOptions.from_config(keys)
    assert back.mode == options.mode and back.groups == options.groups and back.fold == options.fold
    assert back.pool == (options.pool or ("train", "val"))


def test_a_single_group_name_typed_alone_is_one_group():
    # data.holdout_groups=0006R0 on the command line arrives as a string, not a list
    assert HoldoutOptions.from_config({"holdout": "sequence", "holdout_groups": "0006R0"}).groups == ("0006R0",)


def test_the_datamodule_takes_the_options_object_only(camvid_root):
    from tconvseg.data import SegmentationDataModule

    with pytest.raises(TypeError, match=r"holdout='sequence' is invalid; expected a HoldoutOptions"):
        SegmentationDataModule(lambda split, transforms=None: None, "camvid", holdout="sequence")  # type: ignore[arg-type]
