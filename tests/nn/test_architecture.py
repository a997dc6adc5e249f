"""Invariants of tconvseg.nn as a whole: no interpolation anywhere, nothing from the training stack,
and imports that run one way (shapes ← walk ← encoders / blocks ← decoders ← models)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

NN = pathlib.Path(__file__).parents[2] / "src" / "tconvseg" / "nn"
SOURCES = sorted(NN.rglob("*.py"))


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_the_package_has_subpackages_and_they_are_checked():
    assert {p.parent.name for p in SOURCES} >= {"nn", "encoders", "decoders"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(NN)))
def test_no_interpolate_in_the_decoder_path(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    names = {n.attr if isinstance(n, ast.Attribute) else n.id for n in ast.walk(tree) if isinstance(n, (ast.Attribute, ast.Name))}
    assert not names & {"interpolate", "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d", "upsample_bilinear", "upsample_nearest"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(NN)))
def test_nn_imports_nothing_above_it(path: pathlib.Path):
    ours = {m for m in _imports(path) if m.startswith("tconvseg")}
    assert all(m.startswith("tconvseg.nn") for m in ours), ours


def test_shapes_is_pure_arithmetic():
    # The bottom layer: no torch at all, so nothing (the walker included) can sit under it.
    assert not {m for m in _imports(NN / "shapes.py") if m.startswith(("torch", "tconvseg"))}


def test_the_walker_knows_no_encoder_family():
    # torchvision's block rules live beside the torchvision encoders, not in the generic walker.
    imports = _imports(NN / "walk.py")
    assert not {m for m in imports if m.startswith("torchvision")}
    assert {m for m in imports if m.startswith("tconvseg")} == {"tconvseg.nn.shapes"}


def test_torchvision_block_rules_are_registered_by_the_torchvision_encoders():
    from torchvision.models.resnet import BasicBlock

    from tconvseg.nn import walk

    assert BasicBlock in walk._RULES
    assert "tconvseg.nn.encoders.torchvision" in _imports(NN / "encoders" / "__init__.py")


def test_importing_tconvseg_nn_loads_no_training_stack():
    code = (
        "import sys, tconvseg.nn, tconvseg.nn.models, tconvseg.nn.decoders; "
        "bad = [m for m in ('lightning', 'pytorch_lightning', 'hydra', 'omegaconf', 'torchmetrics') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_old_import_paths_still_work():
    from tconvseg.nn import (
        DecoderBlock,
        StagedEncoder,
        plain_conv_encoder,
        torchvision_encoder,
    )
    from tconvseg.nn.encoders import StagedEncoder as Staged
    from tconvseg.nn.encoders import plain_conv_encoder as plain

    assert Staged is StagedEncoder and plain is plain_conv_encoder
    assert callable(torchvision_encoder) and DecoderBlock.__module__ == "tconvseg.nn.blocks"
