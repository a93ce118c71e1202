"""Keep a hand-written report's copies of generated tables current (``dopsd experiment ... --document FILE``).

A report such as ``docs/results.md`` quotes the tables the experiments write (``docs/results/main.md``, ...). Each
quote sits between two marker lines naming the quoted file relative to the report::

    <!-- begin results/main.md -->
    ...replaced by the file's text...
    <!-- end results/main.md -->

:func:`splice` replaces every quote with its file's current text, so a regenerated table cannot leave a stale copy
behind; relative image and link targets in the quoted text are re-pointed from the file's folder to the report's.
"""

from __future__ import annotations

import re
from pathlib import Path

from dopsd.errors import DopsdError

MARKER = re.compile(r"^\s*<!-- (begin|end) (\S+) -->\s*$")
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")  # [text](target) or ![alt](target "title")


def lines_of(text: str) -> list[str]:
    """``text`` split after each ``\\n`` only (kept, with any ``\\r`` before it): joining them gives ``text`` back."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def repoint(text: str, folder: str) -> str:
    """Markdown inline link and image targets in ``text``, relative to ``folder``, made relative to its parent.
    (Reference-style links and HTML tags are left as they are; the experiments' tables use neither.)"""
    if folder in ("", "."):
        return text

    def fix(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^([a-z][a-z0-9+.-]*:|/|#)", target, re.IGNORECASE):
            return match.group(0)
        return f"{match.group(1)}{folder}/{target}{match.group(3)}"

    return LINK.sub(fix, text)


def quotes(lines: list[str], where: str = "the document") -> list[tuple[int, int, str]]:
    """The quoted blocks of a report's ``lines``: (begin line index, end line index, quoted file), in order. Raises
    :class:`DopsdError` on a marker without its partner or a quote opened inside another."""
    found, opened = [], None
    for index, line in enumerate(lines):
        marker = MARKER.match(line)
        if not marker:
            continue
        kind, name = marker.groups()
        if kind == "begin" and opened is not None:
            raise DopsdError(f"{where} line {index + 1}: a quote opens inside the quote of {opened[1]}; close it "
                             f"first with '<!-- end {opened[1]} -->'")
        if kind == "begin":
            opened = (index, name)
        elif opened is None:
            raise DopsdError(f"{where} line {index + 1}: '{line.strip()}' closes no open quote; add "
                             f"'<!-- begin {name} -->' where the quote starts, or remove the line")
        elif opened[1] != name:
            raise DopsdError(f"{where} line {index + 1}: '{line.strip()}' does not close the quote of {opened[1]} "
                             f"opened on line {opened[0] + 1}; its end line is '<!-- end {opened[1]} -->'")
        else:
            found.append((opened[0], index, name))
            opened = None
    if opened is not None:
        raise DopsdError(f"{where}: the quote of {opened[1]} (line {opened[0] + 1}) has no '<!-- end {opened[1]} -->' "
                         f"line")
    return found


def splice(text: str, base: Path, where: str = "the document") -> str:
    """``text`` with every quoted block replaced by the current text of the file it names (relative to ``base``).
    Raises :class:`DopsdError` on a malformed quote (:func:`quotes`) or a quoted file that does not exist."""
    lines = lines_of(text)
    newline = "\r\n" if text.count("\r\n") * 2 > text.count("\n") else "\n"
    out, done = [], 0
    for begin, end, name in quotes(lines, where):
        source = base / name
        if not source.is_file():
            raise DopsdError(f"{where} line {begin + 1} quotes {source}, which does not exist: run the experiment "
                             f"that writes it, or remove the quote")
        quoted = lines_of(repoint(source.read_text(), Path(name).parent.as_posix()))
        if any(MARKER.match(line) for line in quoted):
            raise DopsdError(f"{source} holds quote marker lines itself: a quoted file cannot quote others")
        out += lines[done:begin + 1] + [line.rstrip("\r\n") + newline for line in quoted]
        done = end
    return "".join(out + lines[done:])


def check_document(path: str | Path) -> str:
    """The report's text, once it exists and its quotes are well formed (their files may not exist yet)."""
    path = Path(path)
    if not path.is_file():
        raise DopsdError(f"--document {path} does not exist: give the Markdown report that quotes the tables "
                         f"(e.g. docs/results.md)")
    text = path.read_bytes().decode()  # line endings kept as they are
    quotes(lines_of(text), str(path))
    return text


def splice_file(path: str | Path) -> bool:
    """Rewrites the report at ``path`` with its quotes current; returns whether anything changed."""
    path = Path(path)
    text = check_document(path)
    new = splice(text, path.parent, str(path))
    changed = new != text
    if changed:
        path.write_bytes(new.encode())
    return changed
