"""The results page's record-built tables agree with their run records, and a disagreement is caught."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.test_results_commands import check_command

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "scripts" / "results_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = _tool()
RECORDS = sorted(TOOL.RECORDS.glob("*.json"))


@pytest.mark.parametrize("page", TOOL.PAGES, ids=lambda p: p.name)
def test_the_committed_tables_are_what_the_records_give(page):
    text = page.read_text()
    assert TOOL.BLOCK.search(text), f"{page.name} has no records block"
    assert TOOL.render(text) == text, f"{page.name}: a table differs from its records (python scripts/results_tables.py --write)"
    assert TOOL.main(["--check"]) == 0


def test_a_changed_record_or_table_is_caught(tmp_path):
    records = tmp_path / "runs"
    shutil.copytree(TOOL.RECORDS, records)
    page = TOOL.PAGES[0].read_text()
    name = TOOL.BLOCK.search(page)["spec"].split()[2]
    record = json.loads((records / f"{name}.json").read_text())
    key = next(k for k in record["metrics"] if "/IoU/" in k)
    record["metrics"][key] += 0.01
    (records / f"{name}.json").write_text(json.dumps(record))
    assert TOOL.render(page, records) != page
    (records / f"{name}.json").unlink()
    with pytest.raises(FileNotFoundError, match=f"no record .*{name}.json"):
        TOOL.render(page, records)
    block = TOOL.BLOCK.search(page)
    table = block["table"].replace("| `" + name + "` | ", "| `" + name + "` | 1", 1)
    edited = page[: block.start("table")] + table + page[block.end("table"):]
    assert edited != page and TOOL.render(edited) == page  # the build puts the records' table back


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.stem)
def test_a_record_names_what_made_it_and_its_command_composes(path):
    record = TOOL.load_record(path.stem)
    assert record["command"].startswith("python scripts/train.py ") and record["machine"] and record["date"].startswith("20")
    assert record["steps"] > 0 and record["train_seconds"] > 0 and 0 <= record["metrics"]["holdout/mIoU"] <= 1
    assert f"seed={record['seed']}" in record["command"] or (record["seed"] == 42 and "seed=" not in record["command"])  # 42: the default
    check_command(record["command"])


def test_the_docs_build_rebuilds_the_tables():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))
    assert "scripts/results_tables.py" in config.get("hooks", [])
    page = TOOL.PAGES[0].read_text()
    assert TOOL.on_page_markdown(page, page=None, config=None, files=None) == page


def test_a_run_folder_makes_a_record(tmp_path):
    run = tmp_path / "r1"
    run.mkdir()
    (run / "eval_holdout_last.json").write_text(json.dumps({"metrics": {"holdout/mIoU": 0.5, "holdout/IoU/Sky": 0.9}}))
    (run / "eval_val_last.json").write_text(json.dumps({"metrics": {"val/mIoU": 0.6}}))
    (run / "eval_holdout_last_flip.json").write_text(json.dumps({"metrics": {"holdout/mIoU": 0.52}}))
    record = TOOL.record_from_run(run, "python scripts/train.py seed=43", "m", "2026-12-07", None, "label", 10, 5.0)
    assert record["seed"] == 43
    assert record["metrics"] == {"holdout/mIoU": 0.5, "holdout/IoU/Sky": 0.9, "holdout/mIoU@flip": 0.52, "val/mIoU": 0.6}
    assert TOOL.table("summary", "holdout", ["r1"], records=_write(tmp_path, record)).splitlines()[2] == (
        "| `r1` | label | 43 | 10 | 0:05 | 50.00 | 60.00 |"
    )
    with pytest.raises(FileNotFoundError, match="no eval_<split>_last.json"):
        TOOL.record_from_run(tmp_path, "c", "m", "d", None, "l", 1, 1.0)


def _write(tmp_path: Path, record: dict) -> Path:
    records = tmp_path / "records"
    records.mkdir(exist_ok=True)
    (records / f"{record['name']}.json").write_text(json.dumps(record))
    return records
