import ast
from pathlib import Path

import pytest

from tconvseg.data import CAMVID, PETS, VOC, DatasetInfo, dataset_info, synthetic_info

DATA_PKG = Path(__file__).resolve().parents[2] / "src" / "tconvseg" / "data"


def test_camvid_info():
    assert CAMVID.num_classes == 11 and CAMVID.ignore_index == 11
    assert CAMVID.class_names[0] == "Sky" and CAMVID.class_names[-1] == "Bicyclist"
    assert CAMVID.palette[3] == (128, 64, 128)  # Road in the SegNet palette


def test_voc_info_uses_devkit_colormap():
    assert VOC.num_classes == 21 and VOC.ignore_index == 255
    assert VOC.palette[0] == (0, 0, 0) and VOC.palette[1] == (128, 0, 0)
    assert VOC.palette[VOC.class_names.index("person")] == (192, 128, 128)
    assert VOC.palette[20] == (0, 64, 128)


def test_pets_and_lookup():
    assert PETS.class_names == ("pet", "background", "border") and PETS.num_classes == 3
    assert dataset_info("CamVid") is CAMVID
    with pytest.raises(ValueError, match="unknown dataset name 'kitti'"):
        dataset_info("kitti")


def test_synthetic_info():
    info = synthetic_info(5)
    assert info.num_classes == 5 and len(info.palette) == 5 and info.class_names[0] == "background"
    with pytest.raises(ValueError, match="num_classes"):
        synthetic_info(1)


def test_info_rejects_inconsistent_fields():
    with pytest.raises(ValueError, match="palette has 1 colours but there are 2"):
        DatasetInfo("x", ("a", "b"), 255, ((0, 0, 0),))
    with pytest.raises(ValueError, match="ignore_index 1 collides with class 'b'"):
        DatasetInfo("x", ("a", "b"), 1, ((0, 0, 0), (1, 1, 1)))


def test_data_layer_imports_no_training_code():
    """The data package may use lightning but nothing else from tconvseg outside tconvseg.data,
    except the pure size arithmetic of tconvseg.nn.shapes (its one pair helper)."""
    for file in DATA_PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                allowed = name.startswith("tconvseg.data") or name == "tconvseg.nn.shapes"
                assert not name.startswith("tconvseg") or allowed, f"{file.name}: {name}"
        assert len(file.read_text().splitlines()) < 300, file.name
