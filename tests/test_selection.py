"""The protocol's selection rules under a holdout: what a sweep may optimise, the confirmation drive chosen on by nothing."""

import pytest
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from tconvseg.data.datasets.info import CAMVID, DatasetInfo
from tconvseg.training.builders import ConfigError
from tconvseg.training.selection import check_selection, without_held_out_selection
from tests.helpers.configs import compose_cfg


def test_camvid_names_its_selection_and_confirmation_drives():
    assert CAMVID.selection_groups == ("0006R0",) and CAMVID.confirmation_groups == ("0016E5",)
    with pytest.raises(ValueError, match=r"groups \['a'\] are both selection and confirmation groups"):
        DatasetInfo("x", ("p", "q"), 255, ((0, 0, 0), (1, 1, 1)), selection_groups=("a",), confirmation_groups=("a", "b"))


@pytest.mark.parametrize(
    ("held_out", "metric", "sweep", "select", "message"),
    [
        (["0016E5"], "val/mIoU", True, False, r"under a holdout a sweep may optimise only the selection group\(s\) \['0006R0'\]"),
        (["0001TP"], "val/mIoU", True, False, r"holding out \['0001TP'\].*only the selection group\(s\) \['0006R0'\]"),
        (["0006R0", "0016E5"], "val/mIoU", True, False, r"confirmation: \['0016E5'\], never chosen on"),
        (["0006R0"], "best/val/mIoU", True, False, r"optimized_metric=best/val/mIoU under data.holdout: no best-by-held-out checkpoint"),
        (["0016E5"], None, False, True, r"select_on_holdout=true with data.holdout holding out \['0016E5'\], the confirmation group"),
    ],
)
def test_choices_by_a_held_out_drive_that_the_protocol_forbids_are_refused(held_out, metric, sweep, select, message):
    with pytest.raises(ConfigError, match=message):
        check_selection(held_out, CAMVID, metric, sweep, select)


@pytest.mark.parametrize(
    ("held_out", "metric", "sweep", "select"),
    [
        (None, "best/val/mIoU", True, False),         # no holdout: nothing held out to protect
        (["0006R0"], "val/mIoU", True, False),        # a sweep on the selection drive, end of schedule
        (["0006R0"], "best/val/mIoU", True, True),    # ... or its best checkpoint, asked for knowingly
        (["0016E5"], "best/val/mIoU", False, False),  # a single run: nothing optimises what it returns
    ],
)
def test_choices_the_protocol_allows_pass(held_out, metric, sweep, select):
    check_selection(held_out, CAMVID, metric, sweep, select)


def test_a_dataset_without_a_protocol_only_loses_the_best_metric_under_a_holdout():
    other = DatasetInfo("mine", ("a", "b"), 255, ((0, 0, 0), (1, 1, 1)))
    check_selection(["seq1"], other, "val/mIoU", True, False)
    with pytest.raises(ConfigError, match="no best-by-held-out checkpoint"):
        check_selection(["seq1"], other, "best/val/mIoU", True, False)


def test_best_by_val_checkpoints_are_left_out_and_early_stops_refused_under_a_holdout(tmp_path):
    best = ModelCheckpoint(dirpath=tmp_path, monitor="val/mIoU", mode="max")
    last = ModelCheckpoint(dirpath=tmp_path, monitor=None, filename="last")
    by_loss = ModelCheckpoint(dirpath=tmp_path, monitor="train/loss")
    kept, dropped = without_held_out_selection([best, last, by_loss], ["0006R0"], False)
    assert kept == [last, by_loss] and dropped == ["ModelCheckpoint(monitor=val/mIoU)"]
    assert without_held_out_selection([best, last], None, False) == ([best, last], [])
    assert without_held_out_selection([best, last], ["0006R0"], True) == ([best, last], [])
    with pytest.raises(ConfigError, match=r"early stopping on val/mIoU with data.holdout holding out \['0006R0'\]"):
        without_held_out_selection([EarlyStopping(monitor="val/mIoU", mode="max")], ["0006R0"], False)


def test_the_protocol_configs_say_what_is_selected_on_and_what_confirms(tmp_path):
    selection = compose_cfg("train", tmp_path, ["experiment=protocol_select_steps", "hparams_search=drive_holdout_optuna"])
    assert selection.optimized_metric == "val/mIoU" and list(selection.data.holdout_groups) == ["0006R0"]
    check_selection(list(selection.data.holdout_groups), CAMVID, selection.optimized_metric, True, selection.select_on_holdout)
    confirm = compose_cfg("train", tmp_path, ["experiment=protocol_confirm_steps"])
    assert confirm.optimized_metric is None and list(confirm.data.holdout_groups) == ["0016E5"]
    assert list(confirm.data.holdout_pool) == ["train", "val"] and confirm.trainer.max_epochs == 46
    swept = compose_cfg("train", tmp_path, ["experiment=protocol_confirm_steps", "hparams_search=drive_holdout_optuna"])
    with pytest.raises(ConfigError, match="only the selection group"):
        check_selection(list(swept.data.holdout_groups), CAMVID, swept.optimized_metric, True, swept.select_on_holdout)
