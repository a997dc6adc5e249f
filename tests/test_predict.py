"""tconvseg-predict: masks at each image's exact size, overlays, legend, TTA, and bad input explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tconvseg.data.errors import DatasetError, DatasetNotFoundError
from tconvseg.inference.tta import multiscale_probabilities
from tconvseg.tasks.predict import predict
from tconvseg.training.checkpoints import CKPT_RUN_IDENTITY, load_checkpoint
from tests.helpers.configs import compose_cfg
from tests.helpers.inference import network_input, train_tiny, write_image
from tests.helpers.scripts import run_script

QUIET = ["callbacks=none", "+trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("train"))


def _predict(tmp: Path, ckpt: Path, source: Path | str, *extra: str):
    overrides = [f"ckpt_path={ckpt}", f"input={source}", f"output_dir={tmp / 'out'}", "data=synthetic", *QUIET, *extra]
    return predict(compose_cfg("predict", tmp, overrides))


def test_masks_have_each_images_exact_size_and_are_the_models_argmax(ckpt, tmp_path):
    inputs = tmp_path / "in"
    sizes = {"odd": (97, 131), "odd_twin": (97, 131), "small": (45, 61), "gray": (33, 40), "rgba": (50, 37)}
    for stem, size in sizes.items():
        write_image(inputs / f"{stem}.png", size, mode={"gray": "L", "rgba": "RGBA"}.get(stem, "RGB"), seed=len(stem))
    summary, objects = _predict(tmp_path, ckpt, inputs, "batch_size=2")
    assert sorted(summary["written"]) == sorted(sizes) and summary["skipped"] == []
    out = tmp_path / "out"
    for stem, (h, w) in sizes.items():
        mask = Image.open(out / f"{stem}.png")
        assert mask.mode == "P" and mask.size == (w, h)
        with Image.open(out / f"{stem}_overlay.jpg") as overlay:
            assert overlay.format == "JPEG" and overlay.size == (w, h) and overlay.mode == "RGB"
        with torch.no_grad():
            expected = objects["system"](network_input(inputs / f"{stem}.png"))[0].argmax(0).numpy()
        assert np.array_equal(np.array(mask), expected), stem
    palette = Image.open(out / "odd.png").getpalette()[: 3 * 4]
    assert [tuple(palette[i : i + 3]) for i in range(0, 12, 3)] == list(objects["info"].palette)
    with Image.open(out / "legend.png") as legend:
        assert legend.format == "PNG" and legend.height >= 5 * 14  # four classes and the ignore colour


def test_scale_gives_masks_of_the_scaled_size(ckpt, tmp_path):
    write_image(tmp_path / "in" / "a.jpg", (97, 131))
    summary, objects = _predict(tmp_path, ckpt, tmp_path / "in" / "*.jpg", "scale=0.5")
    mask = np.array(Image.open(tmp_path / "out" / "a.png"))
    assert mask.shape == (48, 66)  # round(97 / 2), round(131 / 2)
    with torch.no_grad():
        expected = objects["system"](network_input(tmp_path / "in" / "a.jpg", scale=0.5))[0].argmax(0).numpy()
    assert np.array_equal(mask, expected)


def test_flip_tta_predicts_the_averaged_probabilities(ckpt, tmp_path):
    path = write_image(tmp_path / "in" / "a.png", (45, 61))
    _, objects = _predict(tmp_path, ckpt, path, "tta=flip")
    x = network_input(path)
    net = objects["system"].net
    with torch.no_grad():
        probs = net(x).softmax(1) + net(x.flip(-1)).softmax(1).flip(-1)
    assert np.array_equal(np.array(Image.open(tmp_path / "out" / "a.png")), probs[0].argmax(0).numpy())


def test_multiscale_flip_tta_predicts_the_averaged_copies(ckpt, tmp_path):
    path = write_image(tmp_path / "in" / "a.png", (45, 61))
    _, objects = _predict(tmp_path, ckpt, path, "tta=multiscale_flip", "tta_scales=[0.5,1.0]")
    x = network_input(path)
    with torch.no_grad():
        expected = multiscale_probabilities(objects["system"].net, x, (0.5, 1.0), flip=True)[0].argmax(0).numpy()
    assert np.array_equal(np.array(Image.open(tmp_path / "out" / "a.png")), expected)


def test_an_unreadable_image_stops_the_run_naming_it(ckpt, tmp_path):
    write_image(tmp_path / "in" / "good.png", (40, 50))
    (tmp_path / "in" / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match=r"cannot read image file .*broken\.png"):
        _predict(tmp_path, ckpt, tmp_path / "in")


def test_on_error_skip_leaves_unreadable_images_out_and_lists_them(ckpt, tmp_path, caplog):
    good = write_image(tmp_path / "in" / "good.png", (40, 50))
    (tmp_path / "in" / "garbage.png").write_bytes(b"not an image at all")
    truncated = tmp_path / "in" / "truncated.png"
    write_image(truncated, (40, 50), seed=1)
    truncated.write_bytes(truncated.read_bytes()[:200])  # the header reads, the pixels do not decode
    summary, _ = _predict(tmp_path, ckpt, tmp_path / "in", "on_error=skip")
    assert summary["written"] == [good.stem]
    assert sorted(Path(p).name for p, _ in summary["skipped"]) == ["garbage.png", "truncated.png"]
    assert "Skipped 2 unreadable image(s)" in caplog.text and "truncated.png" in caplog.text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png", "good_overlay.jpg", "legend.png"]


def test_a_truncated_image_stops_the_run_naming_it(ckpt, tmp_path):
    truncated = write_image(tmp_path / "in" / "truncated.png", (40, 50))
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"cannot decode image file .*truncated\.png"):
        _predict(tmp_path, ckpt, truncated)


def test_empty_inputs_say_so(ckpt, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetNotFoundError, match=r"input=.*empty: the folder holds no image file"):
        _predict(tmp_path, ckpt, tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError, match=r"no file matches it as a glob pattern"):
        _predict(tmp_path, ckpt, tmp_path / "nothing" / "*.png")


def test_two_inputs_with_one_stem_are_refused(ckpt, tmp_path):
    write_image(tmp_path / "in" / "a.png", (20, 20))
    write_image(tmp_path / "in" / "a.jpg", (20, 20))
    with pytest.raises(DatasetError, match=r"occur more than once.*a\.jpg.*a\.png"):
        _predict(tmp_path, ckpt, tmp_path / "in")


def test_a_palette_with_another_class_count_is_explained(ckpt, tmp_path):
    checkpoint = load_checkpoint(ckpt)
    checkpoint[CKPT_RUN_IDENTITY]["data"]["info"] = "my_shapes"  # not a known dataset: colours from data=...
    foreign = tmp_path / "foreign.ckpt"
    torch.save(checkpoint, foreign)
    path = write_image(tmp_path / "in" / "a.png", (20, 20))
    with pytest.raises(ValueError, match=r"predicts 4 classes \(background, shape1.*palette of the data config \(data.info: camvid\) has 11"):
        predict(compose_cfg("predict", tmp_path, [f"ckpt_path={foreign}", f"input={path}", "data=camvid", *QUIET]))


BAD_OPTIONS = [
    ("on_error", "ignore", "on_error='ignore' is invalid"),
    ("scale", "0", "scale=0 is invalid"),
    ("tta", "rotate", "tta='rotate'"),
    ("tta_scales", "[]", r"tta_scales=\[\] is invalid"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_OPTIONS)
def test_bad_options_are_named(ckpt, tmp_path, key, value, message):
    path = write_image(tmp_path / "in" / "a.png", (20, 20))
    with pytest.raises(ValueError, match=message):
        _predict(tmp_path, ckpt, path, f"{key}={value}")


def test_predict_script(ckpt, tmp_path):
    write_image(tmp_path / "in" / "a.png", (37, 53))
    options = [f"ckpt_path={ckpt}", f"input={tmp_path / 'in'}", f"output_dir={tmp_path / 'out'}", "data=synthetic"]
    result = run_script("predict.py", options, tmp_path)
    assert Image.open(tmp_path / "out" / "a.png").size == (53, 37)
    assert "Wrote 1 prediction(s)" in result.stdout


def test_an_image_above_max_image_pixels_is_named_or_skipped(ckpt, tmp_path):
    big = write_image(tmp_path / "in" / "big.png", (60, 80))
    small = write_image(tmp_path / "in" / "small.png", (20, 30))
    with pytest.raises(DatasetError, match=r"big\.png is 80x60 = 4,800 pixels, above max_image_pixels=1,000.*on_error=skip"):
        _predict(tmp_path, ckpt, big, "max_image_pixels=1000")
    summary, _ = _predict(tmp_path, ckpt, tmp_path / "in", "max_image_pixels=1000", "on_error=skip")
    assert summary["written"] == [small.stem] and [Path(p).name for p, _ in summary["skipped"]] == ["big.png"]
    with pytest.raises(ValueError, match=r"max_image_pixels=0 is invalid"):
        _predict(tmp_path, ckpt, small, "max_image_pixels=0")


def test_an_interrupted_write_leaves_no_truncated_output(ckpt, tmp_path, monkeypatch):
    path = write_image(tmp_path / "in" / "a.png", (30, 40))
    real_save = Image.Image.save

    def dying_save(self, fp, *args, **kwargs):
        if not isinstance(fp, (str, Path)):  # the atomic writer's temp file: write a little, then die
            fp.write(b"\x89PNG partial")
            raise OSError("simulated crash in the middle of a write")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", dying_save)
    with pytest.raises(OSError, match="simulated crash"):
        _predict(tmp_path, ckpt, path)
    out = tmp_path / "out"
    assert not out.exists() or [p.name for p in out.iterdir()] == []  # neither a partial file nor a temp file


def test_tiled_prediction_writes_full_size_masks(ckpt, tmp_path):
    path = write_image(tmp_path / "in" / "wide.png", (97, 131))
    summary, objects = _predict(tmp_path, ckpt, path, "tiles=[48,64]", "tile_overlap=16", "tile_margin=4")
    assert summary["written"] == ["wide"] and Image.open(tmp_path / "out" / "wide.png").size == (131, 97)
    assert objects["system"].inference.record()["tiles"] == [48, 64]
    # bytes normalised tile by tile, the mask finished band by band: the argmax of the whole tiled map of the float image
    from tests.test_tiling import whole_map_reference

    system = objects["system"].eval()
    with torch.no_grad():
        reference = whole_map_reference(system.tta, network_input(path), (48, 64), 16, 4, 4_000_000).argmax(dim=1)[0]
    assert np.array_equal(np.array(Image.open(tmp_path / "out" / "wide.png")), reference.numpy())


def test_the_overlay_is_blended_a_few_rows_at_a_time_as_a_whole(monkeypatch):
    from tconvseg.data.augment.transforms import Normalise
    from tconvseg.data.datasets.info import synthetic_info
    from tconvseg.inference.visualize import denormalize, overlay
    from tconvseg.tasks import predict as predict_module

    monkeypatch.setattr(predict_module, "_OVERLAY_PIXELS", 3 * 70)  # pieces of 3 rows
    info = synthetic_info(4)
    writer = predict_module.SegmentationWriter("unused", info)
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    labels = torch.randint(0, 4, (50, 70), dtype=torch.uint8)
    assert np.array_equal(writer.overlay(image, labels), overlay(image.permute(1, 2, 0).numpy(), labels, info))
    normalised = Normalise()(image)
    assert np.array_equal(writer.overlay(normalised, labels), overlay(denormalize(normalised), labels, info))


def test_the_predict_memory_benchmark_prints_a_row_per_size_and_tiling(ckpt, tmp_path):
    result = run_script("bench_predict.py", ["--ckpt", str(ckpt), "--megapixels", "0.01", "--tiles", "none", "[80,96]",
                                             "--data", "synthetic"], tmp_path)
    rows = [line for line in result.stdout.splitlines() if line.strip().startswith("│") and "0.01" in line]
    assert len(rows) == 2 and all(" ok " in row for row in rows)


def test_the_tile_memory_benchmark_prints_a_row_per_photo_and_option(ckpt, tmp_path):
    result = run_script("tile_memory.py", ["--ckpt", str(ckpt), "--shrink", "100", "--data", "synthetic", "--rows", "whole24", "tiled100"], tmp_path)
    rows = [line for line in result.stdout.splitlines() if line.strip().startswith("│")]
    assert len(rows) == 2 and all(" ok " in row for row in rows) and "60x40" in rows[0] and "125x80" in rows[1]
