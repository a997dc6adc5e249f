"""The results page's tables are built from records (run records and table records) and agree with them; a
disagreement, a malformed record or a measurement table typed by hand is caught."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.test_results_commands import SCRIPT as TOOL_SCRIPT
from tests.test_results_commands import check_command

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "scripts" / "results_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = _tool()
RECORDS = sorted(TOOL.RECORDS.glob("*.json"))
TABLES = sorted(TOOL.TABLES.glob("*.json"))
TRANSCRIBED = re.compile(r"^transcribed from docs/results\.md at commit [0-9a-f]{40}[;:] ")
#: A table written by the command that measured it (e.g. benchmark --deploy --record): it names its commit and date.
MEASURED = re.compile(r"^measured: ")


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
    block = next(b for b in TOOL.BLOCK.finditer(page) if b["spec"].startswith("per_class "))
    name = block["spec"].split()[2]
    record = json.loads((records / f"{name}.json").read_text())
    key = next(k for k in record["metrics"] if "/IoU/" in k)
    record["metrics"][key] += 0.01
    (records / f"{name}.json").write_text(json.dumps(record))
    assert TOOL.render(page, records) != page
    (records / f"{name}.json").unlink()
    with pytest.raises(FileNotFoundError, match=f"no record .*{name}.json"):
        TOOL.render(page, records)
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
    block = TOOL.BLOCK.search(page)
    edited = page[: block.start("table")] + "| x |\n| --- |\n| 1 |\n" + page[block.end("table"):]

    class File:  # what mkdocs hands the hook: the page's file
        def __init__(self, path: Path):
            self.file = type("F", (), {"abs_src_path": str(path)})()

    assert TOOL.on_page_markdown(edited, page=File(TOOL.PAGES[0])) == page
    readme = ROOT / "docs" / "records" / "README.md"  # its marker is an example, left as it is
    assert TOOL.BLOCK.search(readme.read_text()) and TOOL.on_page_markdown(readme.read_text(), page=File(readme)) == readme.read_text()


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


def test_no_measurement_table_is_typed_by_hand():
    page = TOOL.PAGES[0].read_text()
    assert TOOL.hand_typed_tables(page) == []
    assert len([b for b in TOOL.BLOCK.finditer(page) if b["spec"].startswith("table ")]) == len(TABLES) >= 20
    typed = "\n| run | mIoU % |\n| --- | --- |\n| `new_run` | 50.00 |\n"
    where = page.index("\n### Peers")
    with_table = page[:where] + typed + page[where:]
    assert [t.split(": ", 1)[0] for t in TOOL.hand_typed_tables(with_table)] == ["Time to accuracy (CamVid, 2 CPU cores)"]
    assert TOOL.hand_typed_tables(page + "\n## Measured again\n" + typed)  # a new section measures too
    assert TOOL.hand_typed_tables(page + typed) == []  # the page ends with "Not measured": nothing there is a measurement
    assert TOOL.hand_typed_tables(page + "\n## Measured again\n\n```text" + typed + "```\n") == []  # an example in a code block


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.stem)
def test_a_table_record_says_where_each_row_comes_from(path):
    record = TOOL.load_table(path.stem)
    assert f"<!-- records: table {path.stem} -->" in TOOL.PAGES[0].read_text(), f"{path.name} is no table of the page"
    assert TRANSCRIBED.match(record["source"]) or MEASURED.match(record["source"]), f"{path.name}: the source should say how it was made"
    if MEASURED.match(record["source"]):
        assert re.fullmatch(r"[0-9a-f]{40}", record["provenance"]["commit"] or "") and record["provenance"]["date"], path.name
    for n, row in enumerate(record["rows"]):
        made = TOOL.provenance(record, row)
        assert set(TOOL.PROVENANCE) <= set(made), f"{path.name} row {n}: missing {set(TOOL.PROVENANCE) - set(made)}"
        for found in (made, made.get("trained_by", {})):
            assert found.get("date") is None or re.fullmatch(r"20\d\d-\d\d-\d\d", found["date"]), f"{path.name} row {n}: date {found['date']!r}"
        from_run = TOOL.run_record(row.get("run")) is not None
        uses = any(TOOL.PLACEHOLDER.search(cell) for cell in row["cells"])
        assert from_run == uses, f"{path.name} row {n}: a run with a run record takes its figures from it, and only such a run"
        assert made["source"] == (f"docs/records/runs/{row['run']}.json" if from_run else record["source"])


def _commands() -> list[str]:
    found = set()
    for path in TABLES:
        record = TOOL.load_table(path.stem)
        for row in record["rows"]:
            made = TOOL.provenance(record, row)
            for where in (made, made.get("trained_by", {})):
                found |= {where[k] for k in ("command", "evaluate") if where.get(k)}
    # what a shell runs: the wrapper (/usr/bin/time -v) and the environment (VAR=...) are not the script's words
    return sorted({re.sub(r"^(?:/usr/bin/time -v |[A-Z_]+=\S+ )+", "", c) for c in found})


COMMANDS = _commands()


def test_the_table_records_name_their_commands():
    assert len(COMMANDS) >= 30 and all(TOOL_SCRIPT.match(c) for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[:70])
def test_a_table_record_command_composes(command):
    check_command(command)


def test_a_changed_table_record_is_caught(tmp_path):
    tables = tmp_path / "tables"
    shutil.copytree(TOOL.TABLES, tables)
    page = TOOL.PAGES[0].read_text()
    path = tables / "drive_protocol.json"
    record = json.loads(path.read_text())
    record["rows"][0]["cells"][2] = "32.96"  # one figure
    path.write_text(json.dumps(record))
    assert TOOL.render(page, tables=tables) != page
    record["rows"][0]["cells"].append("1")
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"drive_protocol.json: row 0 has .* not 9 string cells"):
        TOOL.render(page, tables=tables)
    record["rows"][0] = {"run": "ds_base_s42", "cells": ["{{holdout/mIoU:pct2}}"] * 9}  # figures of a run with no run record
    path.write_text(json.dumps(record))
    with pytest.raises(FileNotFoundError, match=r"asks for \{\{holdout/mIoU:pct2\}\}.*no record docs/records/runs/ds_base_s42.json"):
        TOOL.render(page, tables=tables)
    record["rows"][0] = {"run": "ds_base_s42", "trained": "drive_tta", "cells": ["x"] * 9}
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="trained in table 'drive_tta', which has no row"):
        TOOL.provenance(record, {"run": "ds_noise", "trained": "drive_tta", "cells": []}, tables)
    (tables / "drive_protocol.json").unlink()
    with pytest.raises(FileNotFoundError, match="no table record .*drive_protocol.json"):
        TOOL.render(page, tables=tables)


def test_a_row_of_a_run_record_follows_it(tmp_path):
    records = tmp_path / "runs"
    shutil.copytree(TOOL.RECORDS, records)
    record = json.loads((records / "dp_unet_lite0.json").read_text())
    record["steps"], record["metrics"]["holdout/mIoU"] = 681, 0.5
    (records / "dp_unet_lite0.json").write_text(json.dumps(record))
    row = next(line for line in TOOL.record_table("decoders_lite0", records=records).splitlines() if "`dp_unet_lite0`" in line)
    assert "| 20 (681) |" in row and "| 50.00 |" in row


def test_a_block_without_a_table_line_is_refused_not_merged_with_the_next():
    page = "<!-- records: table a -->\n\n<!-- /records -->\n\ntext\n\n<!-- records: table b -->\n\n| x |\n\n<!-- /records -->\n"
    with pytest.raises(ValueError, match=r"records block\(s\) \['table a'\]: expected the marker, a blank line, a table"):
        TOOL.render(page)
