"""tconvseg-demo without a browser: what the page shows for a file (overlay, shares, refusals), its options, the old call.

The page in a real browser: tests/test_demo_browser.py.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import sys

import numpy as np
import pytest
import torch

from tconvseg.inference.demo_view import PROMPT, View, class_shares, message_html, shares_html, view
from tconvseg.tasks import demo as demo_task
from tests.helpers.configs import compose_cfg
from tests.helpers.inference import network_input, train_tiny, write_image


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    ckpt = train_tiny(tmp)
    return demo_task.demo_model(compose_cfg("demo", tmp, [f"ckpt_path={ckpt}", "data=synthetic"]))


def test_an_image_gives_an_overlay_of_its_size_the_models_labels_and_shares_summing_to_100(model, tmp_path):
    path = write_image(tmp_path / "odd.png", (97, 131))
    result = view(path, model)
    assert not result.refused and result.overlay.shape == (97, 131, 3) and result.overlay.dtype == np.uint8
    with torch.no_grad():
        expected = model.system(network_input(path))[0].argmax(0).numpy()
    assert np.array_equal(result.labels, expected)
    assert [s.name for s in result.shares] == list(model.info.class_names)
    assert sum(s.pixels for s in result.shares) == 97 * 131
    assert sum(s.percent for s in result.shares) == pytest.approx(100.0)
    for share in result.shares:
        assert share.pixels == int((expected == model.info.class_names.index(share.name)).sum())


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_grayscale_and_transparent_images_are_segmented_as_rgb(model, tmp_path, mode):
    result = view(write_image(tmp_path / "a.png", (33, 40), mode=mode), model)
    assert not result.refused and result.overlay.shape == (33, 40, 3)


def test_a_file_that_is_not_an_image_is_refused_by_name_with_a_message(model, tmp_path):
    path = tmp_path / "upload_folder" / "notes.txt"
    path.parent.mkdir()
    path.write_bytes(b"these are words, not pixels\n")
    result = view(path, model)
    assert result.refused and result.overlay is None and result.shares == ()
    assert result.message.startswith("notes.txt is not an image this page can read")
    assert "UnidentifiedImageError" in result.message and str(path.parent) not in result.message  # the upload's folder means nothing


def test_an_image_above_max_image_pixels_is_refused_before_decoding(model, tmp_path):
    result = view(write_image(tmp_path / "big.png", (40, 60)), dataclasses.replace(model, max_pixels=2399))
    assert result.refused and result.overlay is None
    assert "big.png is 60x40 = 2,400 pixels, above this page's limit of max_image_pixels=2,399" in result.message
    assert not view(tmp_path / "big.png", dataclasses.replace(model, max_pixels=2400)).refused  # the limit itself is allowed


def test_a_truncated_image_is_refused_as_undecodable(model, tmp_path):
    good = write_image(tmp_path / "whole.png", (64, 64))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # the header survives, the pixels do not
    result = view(cut, model)
    assert result.refused and result.message.startswith("cut.png could not be decoded")


def test_nothing_dropped_gives_the_prompt():
    assert view(None, None).message == PROMPT  # type: ignore[arg-type]
    assert 'class="tcs-prompt"' in message_html(View(message=PROMPT))


def test_class_shares_count_each_class_and_the_html_shows_names_colours_and_percents(model):
    labels = np.array([[0, 0, 1, 3], [0, 0, 1, 3]])
    shares = class_shares(labels, model.info)
    assert [(s.pixels, s.percent) for s in shares] == [(4, 50.0), (2, 25.0), (0, 0.0), (2, 25.0)]
    page = shares_html(model.info, shares)
    rows = re.findall(r'<tr class="tcs-class">(.*?)</tr>', page)
    assert len(rows) == 4 and "50.0 %" in rows[0] and "0.0 %" in rows[2] and "tcs-bar\"" not in rows[2]  # no bar for no pixel
    for row, name, colour in zip(rows, model.info.class_names, model.info.palette):
        assert name in row and "rgb({}, {}, {})".format(*colour) in row
    assert "%" not in shares_html(model.info)  # before any image: the legend alone


def test_the_html_escapes_class_names_and_messages(model):
    info = dataclasses.replace(model.info, class_names=("<b>sky</b>", "a & b", "c", "d"))
    assert "&lt;b&gt;sky&lt;/b&gt;" in shares_html(info) and "a &amp; b" in shares_html(info)
    refusal = message_html(View(message="<script>x</script>.png is not an image"))
    assert "<script>" not in refusal and 'class="tcs-refused"' in refusal


@pytest.mark.parametrize(("override", "named"), [
    ("port=0", "port=0"), ("port=notaport", "port='notaport'"), ("max_image_pixels=0", "max_image_pixels=0"),
    ("overlay_alpha=2", "overlay_alpha=2"), ("scale=-1", "scale=-1"), ("device=tpu", "device='tpu'"), ("adapt_bn=true", "adapt_bn=true"),
])
def test_bad_options_are_named_before_the_checkpoint_is_read(tmp_path, override, named):
    cfg = compose_cfg("demo", tmp_path, ["ckpt_path=no_such.ckpt", override])
    with pytest.raises(ValueError, match=re.escape(named)):
        demo_task.demo_model(cfg)


def test_the_page_has_the_upload_the_message_the_legend_and_the_overlay(model):
    page = demo_task.build_page(model)
    ids = {block.elem_id for block in page.blocks.values()}
    assert {"tcs-upload", "tcs-message", "tcs-shares", "tcs-overlay"} <= ids
    assert page.analytics_enabled is False


def test_a_taken_port_is_explained(model, tmp_path, monkeypatch):
    monkeypatch.setattr(demo_task, "demo_model", lambda _cfg: model)  # the restored model of the fixture
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = compose_cfg("demo", tmp_path, ["ckpt_path=unused.ckpt", f"port={port}"])
        with pytest.raises(OSError, match=f"cannot serve on 127.0.0.1:{port}.*choose another with port=N"):
            demo_task.serve(cfg, block=False)


@pytest.mark.parametrize(("argv", "legacy"), [
    ([], True), (["--encoders", "resnet18"], True), (["--sizes=5x3"], True), (["--topology", "32s"], True),
    (["ckpt_path=a.ckpt"], False), (["ckpt_path=a.ckpt", "port=8000"], False),
])
def test_the_old_calls_are_told_apart_from_the_page(argv, legacy):
    assert demo_task.is_legacy_call(argv) is legacy


def test_the_old_call_still_prints_the_shapes_table_with_a_future_warning(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["tconvseg-demo", "--encoders", "resnet18", "--sizes", "5x3"])
    with pytest.warns(FutureWarning, match="tconvseg-shapes"):
        demo_task.main()
    out = capsys.readouterr().out
    assert "resnet18" in out and "5x3" in out and "NO" not in out


def test_the_page_call_goes_through_hydra_with_the_demo_config(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TCONVSEG_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["tconvseg-demo", f"ckpt_path={tmp_path / 'missing.ckpt'}", "port=7999"])
    with pytest.raises(SystemExit):
        demo_task.main()
    assert "missing.ckpt: no such checkpoint file" in capsys.readouterr().err
