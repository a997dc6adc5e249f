"""Pointers that cannot go stale: a config comment, docstring or script that sends the reader to a section of the
README or of a manual page names a heading that exists there, and no user-facing file names an issue number or a
document outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Where references are read: configs, the package, the scripts and the tests (comments, docstrings and code alike).
SOURCES = sorted(
    p for folder in ("configs", "src", "scripts", "tests") for p in (ROOT / folder).rglob("*")
    if p.suffix in {".py", ".yaml"} and "src/tconvseg/configs" not in p.as_posix() and p.name != "test_pointers.py"
)
#: ``README, "Heading"``, ``docs/results.md, "Heading"``, ``the README ("Heading")``: a page, then a quoted heading.
REFERENCE = re.compile(r'\b(README(?:\.md)?|docs/[\w-]+\.md)(?:,\s*|\s+\(?)"([^"\n]+)"')
#: Files a user reads: everything above but the tests, and the manual.
USER_FACING = [p for p in SOURCES if "tests" not in p.relative_to(ROOT).parts] + [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _flat(text: str) -> str:
    # A reference may wrap across comment lines: join them.
    return re.sub(r"\n\s*#?\s*", " ", text)


def references(path: Path) -> list[tuple[str, str]]:
    """``[(page, heading)]`` named in ``path``."""
    return [(m[1], m[2]) for m in REFERENCE.finditer(_flat(path.read_text()))]


def headings(page: str) -> list[str]:
    """The headings of a page (``README`` is ``README.md``), markdown marks and backticks removed."""
    path = ROOT / ("README.md" if page.startswith("README") else page)
    return [line.lstrip("#").strip().replace("`", "") for line in path.read_text().splitlines() if re.match(r"#{1,6} ", line)]


ALL_REFERENCES = [(p.relative_to(ROOT).as_posix(), page, heading) for p in SOURCES for page, heading in references(p)]


def test_the_reader_finds_references():
    pages = {page for _, page, _ in ALL_REFERENCES}
    assert len(ALL_REFERENCES) >= 10 and {"docs/results.md", "docs/models.md"} <= pages


@pytest.mark.parametrize(("source", "page", "heading"), ALL_REFERENCES, ids=[f"{s}:{h}" for s, _, h in ALL_REFERENCES])
def test_a_referenced_section_exists(source, page, heading):
    """The quoted text is a heading of the page, or the start of one ("New streets" for "New streets: a drive held out")."""
    found = headings(page)
    assert any(h == heading or h.startswith(heading) for h in found), (
        f'{source} sends the reader to {page}, "{heading}", which has no such heading'
    )


def test_a_stale_reference_is_caught(tmp_path):
    stale = tmp_path / "x.yaml"
    stale.write_text('# see the README, "A section that\n# does not exist" and docs/results.md, "New streets"\n')
    (page_a, missing), (page_b, present) = references(stale)
    assert (page_a, missing) == ("README", "A section that does not exist")
    assert not any(h.startswith(missing) for h in headings(page_a))
    assert any(h.startswith(present) for h in headings(page_b))


ISSUE = re.compile(r"\bissues?\s*#?\d+\b|\(#\d+\)", re.IGNORECASE)
OUTSIDE = re.compile(r"\bseed document\b|\.\./shared\b|transposed-convolution\.md", re.IGNORECASE)


@pytest.mark.parametrize("path", USER_FACING, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_user_facing_file_names_an_issue_or_a_document_outside_the_repository(path):
    text = path.read_text()
    assert not ISSUE.search(text), f"{path.relative_to(ROOT)} names an issue: {ISSUE.search(text)[0]!r}"
    assert not OUTSIDE.search(text), f"{path.relative_to(ROOT)} points outside the repository: {OUTSIDE.search(text)[0]!r}"
