"""4x4 Sudoku: a 16-character puzzle (0 = empty) in, the 16-digit solution out; scored by empty cells filled right."""

from __future__ import annotations

import random
import re

from dopsd.tasks.answers import PHRASE, last_lines
from dopsd.tasks.base import Example, Task
from dopsd.tasks.distinct import draw_distinct

# any layout of the 16 digits: rows, spaces, commas, bars, lists of lists, "Row 1:" labels
LAYOUT = re.compile(r"^[ \t]*[1-4][:)][ \t]|\brow\s*[1-4]\s*:?|\b4\s*x\s*4\b|[\s,|;\-\[\](){}.`'\"]+",
                    re.IGNORECASE | re.MULTILINE)
GRID_LINE = re.compile(r"[\d\s,|;\-\[\](){}.`'\"]+")
SEPARATE_GRIDS = re.compile(r"(?<!\d)\d{16}(?!\d)")
UNITS = [
    [r * 4 + c for c in range(4)] for r in range(4)
] + [[r * 4 + c for r in range(4)] for c in range(4)] + [
    [(br + r) * 4 + bc + c for r in range(2) for c in range(2)] for br in (0, 2) for bc in (0, 2)
]
PEERS = [sorted({p for unit in UNITS if cell in unit for p in unit} - {cell}) for cell in range(16)]


def count_solutions(grid: list[int], limit: int = 2) -> int:
    """Solutions of a 4x4 grid (0 = empty), counted up to ``limit``."""
    try:
        cell = grid.index(0)
    except ValueError:
        return 1
    found = 0
    for digit in range(1, 5):
        if all(grid[p] != digit for p in PEERS[cell]):
            grid[cell] = digit
            found += count_solutions(grid, limit - found)
            grid[cell] = 0
            if found >= limit:
                break
    return found


def is_valid_solution(solution: str) -> bool:
    """Whether a 16-character string is a complete grid with 1-4 once in every row, column and box."""
    return len(solution) == 16 and all(sorted(solution[i] for i in unit) == list("1234") for unit in UNITS)


def random_solution(rng: random.Random) -> list[int]:
    """A backtracking fill with shuffled digit order: any of the 288 valid grids can come out."""
    grid = [0] * 16

    def fill(cell: int) -> bool:
        if cell == 16:
            return True
        digits = [1, 2, 3, 4]
        rng.shuffle(digits)
        for digit in digits:
            if all(grid[p] != digit for p in PEERS[cell]):
                grid[cell] = digit
                if fill(cell + 1):
                    return True
        grid[cell] = 0
        return False

    fill(0)
    return grid


def make_puzzle(rng: random.Random, min_clues: int = 4, max_clues: int = 10) -> tuple[str, str]:
    """A puzzle with a unique solution: remove cells while the solution stays unique, down to a drawn clue count."""
    solution = random_solution(rng)
    puzzle = list(solution)
    target = rng.randint(min_clues, max_clues)
    for cell in rng.sample(range(16), 16):
        if sum(1 for v in puzzle if v) <= target:
            break
        kept = puzzle[cell]
        puzzle[cell] = 0
        if count_solutions(list(puzzle)) != 1:
            puzzle[cell] = kept
    return "".join(map(str, puzzle)), "".join(map(str, solution))


def generate_sudoku(n: int, seed: int) -> list[Example]:
    """``n`` distinct puzzles with unique solutions, reproducible from ``seed``."""
    rng = random.Random(seed)
    pairs = draw_distinct(n, lambda: make_puzzle(rng), key=lambda pair: pair[0], what="Sudoku puzzles")
    return [Example(index=i, prompt=puzzle, answer=solution, meta={"puzzle": puzzle})
            for i, (puzzle, solution) in enumerate(pairs)]


def sudoku_splits(n_train: int, n_heldout: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Train and held-out puzzles from one stream of distinct puzzles, so they never overlap."""
    pool = generate_sudoku(n_train + n_heldout, seed)
    heldout = [Example(i, e.prompt, e.answer, e.meta) for i, e in enumerate(pool[n_train:])]
    return pool[:n_train], heldout


def write_sudoku_csv(examples: list[Example], path) -> None:
    """The test-set format: a ``Puzzle,Solution`` header, then one ``puzzle,solution`` row per example."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("Puzzle,Solution\n")
        handle.writelines(f"{e.prompt},{e.answer}\n" for e in examples)


class Sudoku(Task):
    name = "sudoku"
    correct_threshold = 1.0
    multiline_answer = True
    # "The solution is 3142243142131324." states the grid too (a grid of 16 digits is never prose)
    phrase = re.compile(rf"(?:{PHRASE.pattern}|\bsolution\s*(?:is\b|:))[\s:*]*", re.IGNORECASE)
    filter_threshold = 0.25  # the trainer's correct-only rule (paper, appendix C.3)

    def question_text(self, example: Example) -> str:
        return (
            "Solve this 4x4 Sudoku. Each row, column and 2x2 box must contain the digits 1-4 exactly once. "
            f"The puzzle is given row by row as 16 digits, 0 marking an empty cell: {example.prompt}\n"
            "Write the solution as 16 digits in the <answer> tag."
        )

    def compact_prompt(self, example: Example) -> str:
        return f"{example.prompt}="

    prompt_format = "the puzzle as 16 digits 0-4, row by row, 0 for an empty cell (e.g. 1020030031004230)"

    def example_from_text(self, text: str) -> Example:
        puzzle = re.sub(r"\s+", "", text).removesuffix("=")
        if not re.fullmatch(r"[0-4]{16}", puzzle):
            raise ValueError(f"{text.strip()[:40]!r} is not a sudoku puzzle: give {self.prompt_format}")
        return Example(index=0, prompt=puzzle, answer="")

    def parse_answer(self, text: str) -> list[str]:
        """Exactly 16 digits in any layout (any digit, so wrong cells still earn partial credit); two or more
        16-digit grids are alternatives; anything else, a padded or truncated grid included, is none."""
        digits = re.sub(r"[^0-9]", "", LAYOUT.sub("", text))  # words around the grid are not cells
        if len(digits) == 16:
            return [digits]
        grids = SEPARATE_GRIDS.findall(text)
        return list(dict.fromkeys(grids)) if len(grids) > 1 else []

    def bare_answer(self, completion: str) -> str | None:
        """The trailing lines that hold only digits and separators, when they make one grid."""
        block = []
        for line in reversed(last_lines(completion, 16)):
            if len(line) > 200 or not GRID_LINE.fullmatch(line):
                break
            block.insert(0, line)
        text = "\n".join(block)
        return text if re.fullmatch(r"[0-9]{16}", LAYOUT.sub("", text)) else None

    def score_answer(self, example: Example, answer: str) -> float:
        puzzle = example.meta.get("puzzle", example.prompt)
        empty = [i for i, char in enumerate(puzzle) if char == "0"]
        if not empty:
            return float(answer == example.answer)
        return sum(answer[i] == example.answer[i] for i in empty) / len(empty)

    def reference_completion(self, example: Example, style: str = "instruct") -> str:
        if style == "compact":
            return example.answer
        return f"<reasoning>\nFill each empty cell.\n</reasoning>\n<answer>\n{example.answer}\n</answer>"

    def worked_solution(self, example: Example) -> str:
        """Each empty cell and its digit, row by row: ``r1c2=3 r1c4=1 ...``."""
        puzzle = example.meta.get("puzzle", example.prompt)
        cells = [f"r{i // 4 + 1}c{i % 4 + 1}={example.answer[i]}" for i, char in enumerate(puzzle) if char == "0"]
        return " ".join(cells)

    def parse_row(self, row: dict, index: int) -> Example:
        puzzle = str(row.get("puzzle", row.get("column0", ""))).strip()
        solution = str(row.get("solution", row.get("column1", ""))).strip()
        if not re.fullmatch(r"[0-4]{16}", puzzle):
            raise ValueError(f"puzzle {puzzle[:20]!r} is not 16 digits 0-4")
        if not is_valid_solution(solution):
            raise ValueError(f"solution {solution[:20]!r} is not a valid 4x4 Sudoku solution")
        if any(p != "0" and p != s for p, s in zip(puzzle, solution)):
            raise ValueError("solution contradicts the puzzle's clues")
        return Example(index=index, prompt=puzzle, answer=solution, meta={"puzzle": puzzle})
