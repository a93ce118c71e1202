"""The README stays a newcomer's page and the guides hold together: README.md is at most 250 lines, every relative
Markdown link and image in README.md and docs/*.md names a file that exists (and, into a Markdown file, a heading
that exists), and docs/architecture.md names every module of the package and only paths that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
README_LIMIT = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def without_code(text: str) -> str:
    """The Markdown outside fenced blocks and code spans (links and headings there are text, not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[str]:
    return [target for target in LINK.findall(without_code(path.read_text(encoding="utf-8")))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: ...


def test_slug_follows_github():
    assert slug("The default run") == "the-default-run"
    assert slug("D-OPSD for few-step image generators (`dopsd image-opsd`)") == \
        "d-opsd-for-few-step-image-generators-dopsd-image-opsd"
    assert slug("SmolLM2-135M-Instruct (GPU recipe; run on the CPU only)") == \
        "smollm2-135m-instruct-gpu-recipe-run-on-the-cpu-only"
    assert links_of("[a](b.md) ![c](d/e.png \"E\") [f](https://x.org) `[g](h.md)`\n```\n[i](j.md)\n```\n") == \
        ["b.md", "d/e.png"]


def links_of(text: str) -> list[str]:
    return [t for t in LINK.findall(without_code(text)) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_LIMIT, (f"README.md has {len(lines)} lines, more than {README_LIMIT}: move detail "
                                        "into a guide under docs/ and link it")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page: Path):
    broken = []
    for target in links(page):
        file_part, _, anchor = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists():
            broken.append(f"{target}: no file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


ARCHITECTURE = DOCS / "architecture.md"
PACKAGE = ROOT / "src" / "dopsd"


def named_paths() -> set[str]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    return {path.rstrip("./") for path in re.findall(r"src/dopsd/[A-Za-z0-9_./-]*", text)}


def test_architecture_names_existing_paths():
    missing = sorted(path for path in named_paths() if not (ROOT / path).exists())
    assert not missing, "docs/architecture.md names paths that do not exist:\n" + "\n".join(missing)


def test_architecture_names_every_module():
    named = named_paths()
    modules = sorted(str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py") if path.name != "__init__.py")
    unnamed = [module for module in modules if module not in named]
    assert not unnamed, "docs/architecture.md does not name these modules:\n" + "\n".join(unnamed)
