"""The CPU presets' links into docs/presets.md land on a section, and the doc's sections are all linked."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation but hyphens dropped, spaces as hyphens."""
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_into_the_presets_doc_names_one_of_its_sections():
    doc = (ROOT / "docs" / "presets.md").read_text()
    sections = {anchor(line[3:]) for line in doc.splitlines() if line.startswith("## ")}
    linked = set()
    for path in (ROOT / "src" / "dopsd").rglob("*.py"):
        for links in re.findall(r"docs/presets\.md((?:,? ?#[a-z0-9-]+)+)", path.read_text()):
            linked |= set(re.findall(r"#([a-z0-9-]+)", links))
    linked |= set(re.findall(r"\]\(#([a-z0-9-]+)\)", doc))
    assert linked <= sections, linked - sections
    assert sections <= linked, sections - linked  # a section nothing points to has lost its setting
