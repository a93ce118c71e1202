"""A report's quoted tables (``dopsd experiment ... --document``): replaced by the files' text, links re-pointed,
malformed quotes refused; and every committed page (README.md, docs/*.md) quoting the committed tables as they are."""

from pathlib import Path

import pytest

from dopsd.cli import main
from dopsd.errors import DopsdError
from dopsd.experiments.document import lines_of, quotes, repoint, splice, splice_file

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_a_quote_is_replaced_by_the_file_and_the_rest_is_kept(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "main.md").write_text("| a |\n|---|\n| 2 |\n\n![plot](plot.png)\n")
    (tmp_path / "top.md").write_text("top table")  # no final newline: one is added
    report = ("# Report\n<!-- begin results/main.md -->\n| a |\n|---|\n| 1 |\n<!-- end results/main.md -->\n"
              "prose\n<!-- begin top.md -->\n<!-- end top.md -->\n")
    assert splice(report, tmp_path) == (
        "# Report\n<!-- begin results/main.md -->\n| a |\n|---|\n| 2 |\n\n![plot](results/plot.png)\n"
        "<!-- end results/main.md -->\nprose\n<!-- begin top.md -->\ntop table\n<!-- end top.md -->\n")


def test_splicing_twice_changes_nothing_and_a_current_file_is_not_rewritten(tmp_path):
    (tmp_path / "t.md").write_text("new\n")
    path = tmp_path / "report.md"
    path.write_text("<!-- begin t.md -->\nold\n<!-- end t.md -->\n")
    assert splice_file(path) is True
    assert path.read_text() == "<!-- begin t.md -->\nnew\n<!-- end t.md -->\n"
    assert splice_file(path) is False


def test_only_relative_targets_are_repointed():
    text = '![a](a.png) [b](https://x.org/b) [c](#c) [d](/abs/d.md) [e](sub/e.md) ![f](f.png "F")'
    assert repoint(text, "results") == ('![a](results/a.png) [b](https://x.org/b) [c](#c) [d](/abs/d.md) '
                                        '[e](results/sub/e.md) ![f](results/f.png "F")')
    assert repoint(text, ".") == text


@pytest.mark.parametrize("report, message", [
    ("<!-- end a.md -->\n", "closes no open"),
    ("<!-- begin a.md -->\n<!-- end b.md -->\n", "does not close the quote of a.md opened on line 1"),
    ("<!-- begin a.md -->\n", "has no '<!-- end a.md -->' line"),
    ("<!-- begin a.md -->\n<!-- begin b.md -->\n", "a quote opens inside the quote of a.md"),
])
def test_malformed_quotes_are_refused(report, message):
    with pytest.raises(DopsdError, match=message):
        quotes(lines_of(report))


def test_a_quoted_file_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(DopsdError, match="does not exist"):
        splice("<!-- begin gone.md -->\n<!-- end gone.md -->\n", tmp_path)


def test_the_committed_report_quotes_every_experiment_s_tables():
    report = (DOCS / "results.md").read_text()
    names = {name for _, _, name in quotes(lines_of(report))}
    assert {f"results/{n}.md" for n in ("protocol", "main", "toy", "overlap", "ablations", "opdlm", "image")} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_page_quotes_the_committed_tables_as_they_are(page):
    """The copies of the tables in README.md and docs/*.md (docs/results.md, docs/image.md, ...): regenerating a table
    without re-splicing every page that quotes it fails here."""
    text = page.read_text()
    assert splice(text, page.parent, str(page)) == text, (
        f"{page.relative_to(ROOT)} holds a stale copy of a quoted table: `python scripts/quoted_numbers.py` "
        f"re-splices every page (or `dopsd experiment ... --document {page.relative_to(ROOT)}`)")


def test_the_experiment_command_splices_the_report(tmp_path, monkeypatch, capsys):
    """`dopsd experiment toy --document`: the toy table written (read back from the committed sample cache), then its
    quote replaced."""
    monkeypatch.chdir(tmp_path)
    Path("out/sudoku").mkdir(parents=True)
    cache = DOCS / "results" / "sudoku" / "toy-500-seed0.json"
    Path("out/sudoku", cache.name).write_text(cache.read_text())
    Path("report.md").write_text("intro\n<!-- begin out/toy.md -->\nstale\n<!-- end out/toy.md -->\n")
    assert main(["experiment", "toy", "--tasks", "sudoku", "--output", "out", "--document", "report.md"]) == 0
    table = Path("out/toy.md").read_text()
    assert "stale" not in Path("report.md").read_text()
    assert Path("report.md").read_text() == f"intro\n<!-- begin out/toy.md -->\n{table}<!-- end out/toy.md -->\n"
    assert "report.md: quoted tables updated" in capsys.readouterr().out


def test_a_crlf_report_keeps_its_line_endings_and_markers_may_carry_spaces(tmp_path):
    (tmp_path / "t.md").write_text("row 1\nrow 2\n")
    path = tmp_path / "report.md"
    path.write_bytes(b"intro\r\n  <!-- begin t.md -->  \r\nold\r\n<!-- end t.md -->\r\ntail")
    assert splice_file(path) is True
    assert path.read_bytes() == b"intro\r\n  <!-- begin t.md -->  \r\nrow 1\r\nrow 2\r\n<!-- end t.md -->\r\ntail"


def test_a_quoted_file_cannot_quote_others(tmp_path):
    (tmp_path / "t.md").write_text("<!-- begin u.md -->\n<!-- end u.md -->\n")
    with pytest.raises(DopsdError, match="cannot quote others"):
        splice("<!-- begin t.md -->\n<!-- end t.md -->\n", tmp_path)
