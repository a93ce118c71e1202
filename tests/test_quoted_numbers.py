"""Every "mean ± spread" and every "difference [low, high]" interval the README and the guides quote comes from a
generated table: each "a ± b" and "d [l, h]" in README.md and docs/*.md outside the quoted blocks appears as such in a
file under docs/results/ that an experiment (`dopsd experiment NAME`) or scripts/quoted_numbers.py writes, and that
script rebuilds its committed files from the committed runs. A number retyped by hand goes stale when its table is
regenerated (as when every spread became a sample std); this fails instead."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from dopsd.experiments import EXPERIMENTS
from dopsd.experiments.document import lines_of, quotes

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SPREAD = re.compile(r"(?<![\w.])([-+]?\d+(?:\.\d+)?)\s*±\s*(\d+(?:\.\d+)?)(?![\w.])")  # a line break may split one
# a paired-bootstrap difference with its interval, "-0.098 [-0.145, -0.053]" (protocol v2's tables)
INTERVAL = re.compile(r"(?<![\w.])([-+]\d+\.\d+)\s*\[([-+]\d+\.\d+),\s*([-+]\d+\.\d+)\]")
# what is checked: a pattern and how a match is written in the tables
FORMS = {"spread": (SPREAD, lambda a, b: f"{a} ± {b}"),
         "interval": (INTERVAL, lambda d, low, high: f"{d} [{low}, {high}]")}


def load_script():
    spec = importlib.util.spec_from_file_location("quoted_numbers", ROOT / "scripts" / "quoted_numbers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def values(text: str, form: str = "spread") -> set[str]:
    pattern, write = FORMS[form]
    return {write(*match.groups()) for match in pattern.finditer(text)}


def unquoted_values(path: Path, form: str = "spread") -> list[tuple[int, str]]:
    """(line number, the value as the tables write it) for each value of ``form`` on the page outside its quoted
    blocks."""
    pattern, write = FORMS[form]
    lines = lines_of(path.read_text())
    quoted = {index for begin, end, _ in quotes(lines, str(path)) for index in range(begin, end + 1)}
    text = "".join(line if index not in quoted else "\n" for index, line in enumerate(lines))
    return [(text.count("\n", 0, match.start()) + 1, write(*match.groups())) for match in pattern.finditer(text)]


def generated_names() -> set[str]:
    return {f"{name}.md" for name in EXPERIMENTS} | set(load_script().WRITERS)


def test_every_table_under_docs_results_is_generated():
    """A hand-written file there could back a number no command regenerates."""
    names = {path.name for path in RESULTS.glob("*.md")}
    assert names <= generated_names(), (f"{sorted(names - generated_names())} under docs/results/ are written by no "
                                        "experiment and not by scripts/quoted_numbers.py")


@pytest.mark.parametrize("form", list(FORMS))
def test_every_quoted_value_is_in_a_generated_table(form):
    tables = set().union(*(values(path.read_text(), form) for path in RESULTS.glob("*.md")))
    stale = [f"{path.relative_to(ROOT)}:{line}: {value}" for path in PAGES
             for line, value in unquoted_values(path, form) if value not in tables]
    assert not stale, (f"these {form}s appear in no table under docs/results/ (a stale copy, or a number no command "
                       "regenerates): copy them from their table, or quote the table between '<!-- begin ... -->' "
                       "and '<!-- end ... -->' lines:\n" + "\n".join(stale))


def test_a_spread_split_over_two_lines_and_one_in_a_quote_are_told_apart(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("a plateau at 0.364 ±\n0.015, once\n<!-- begin t.md -->\n| 0.1 ± 0.2 |\n<!-- end t.md -->\n"
                    "and 1 ± 2, 0.3±0.1, not v1.0 ± 2x\n")
    assert unquoted_values(page) == [(1, "0.364 ± 0.015"), (6, "1 ± 2"), (6, "0.3 ± 0.1")]


def test_an_interval_split_over_two_lines_is_read_as_the_tables_write_it(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("minus RFT -0.098 [-0.145,\n-0.053], and +0.048 [+0.010, +0.086]; not [1, 2] or 0.5 [0.1, 0.9]\n"
                    "<!-- begin t.md -->\n| +0.1 [+0.0, +0.2] |\n<!-- end t.md -->\n")
    assert unquoted_values(page, "interval") == [(1, "-0.098 [-0.145, -0.053]"), (2, "+0.048 [+0.010, +0.086]")]


def test_the_script_rebuilds_its_committed_tables_from_the_committed_runs():
    """scripts/quoted_numbers.py reads only the committed runs' JSON: its tables are the committed files."""
    for name, text in load_script().tables(RESULTS).items():
        assert (RESULTS / name).read_text() == text, (f"docs/results/{name} differs from what "
                                                      "`python scripts/quoted_numbers.py` writes: run it")


def test_every_table_the_script_writes_is_quoted_somewhere():
    quoted = {(page.parent / name).resolve()
              for page in PAGES for _, _, name in quotes(lines_of(page.read_text()), str(page))}
    unquoted = [name for name in load_script().WRITERS if (RESULTS / name).resolve() not in quoted]
    assert not unquoted, f"{unquoted}: written by scripts/quoted_numbers.py and quoted by no page"
