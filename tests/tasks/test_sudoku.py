import itertools

import pytest

from dopsd.tasks import DataError, generate_sudoku, get_task, sudoku_splits
from dopsd.tasks.base import Example
from dopsd.tasks.sudoku import write_sudoku_csv


def all_grids() -> list[str]:
    """Every valid 4x4 grid, by brute force over row permutations (independent of the package's solver)."""
    rows = list(itertools.permutations("1234"))
    grids = []
    for grid in itertools.product(rows, repeat=4):
        columns_ok = all(len({row[c] for row in grid}) == 4 for c in range(4))
        boxes_ok = all(
            len({grid[r][c] for r in (br, br + 1) for c in (bc, bc + 1)}) == 4 for br in (0, 2) for bc in (0, 2)
        )
        if columns_ok and boxes_ok:
            grids.append("".join("".join(row) for row in grid))
    return grids


GRIDS = all_grids()


def test_there_are_288_grids():
    assert len(GRIDS) == 288


def test_generated_puzzles_have_exactly_one_solution_by_brute_force():
    examples = generate_sudoku(200, seed=1)
    for example in examples:
        fits = [g for g in GRIDS if all(p in ("0", s) for p, s in zip(example.prompt, g))]
        assert fits == [example.answer]
    clues = {16 - example.prompt.count("0") for example in examples}
    assert len(clues) >= 4 and min(clues) >= 4  # the number of clues varies


def test_generation_is_seeded_and_splits_never_overlap():
    assert [e.prompt for e in generate_sudoku(30, seed=7)] == [e.prompt for e in generate_sudoku(30, seed=7)]
    assert [e.prompt for e in generate_sudoku(30, seed=7)] != [e.prompt for e in generate_sudoku(30, seed=8)]
    train, heldout = sudoku_splits(400, 100, seed=5)
    assert (len(train), len(heldout)) == (400, 100)
    assert len({e.prompt for e in train}) == 400
    assert not {e.prompt for e in train} & {e.prompt for e in heldout}
    assert [e.index for e in heldout] == list(range(100))


def test_references_score_one_in_both_styles():
    task = get_task("sudoku")
    examples = generate_sudoku(300, seed=2)
    for style in ("instruct", "compact"):
        assert all(task.score(e, task.reference_completion(e, style)).correct for e in examples)


def test_partial_credit_counts_only_the_empty_cells():
    task = get_task("sudoku")
    solution = "3142243142131324"
    example = Example(0, "3102200002100320", solution, {"puzzle": "3102200002100320"})  # 9 empty cells
    assert task.score(example, solution).value == 1.0
    puzzle = "".join("0" if cell in (0, 7, 8, 15) else digit for cell, digit in enumerate(solution))
    four_empty = Example(0, puzzle, solution, {"puzzle": puzzle})
    three_right = solution[:15] + "1"
    score = task.score(four_empty, f"<answer>{three_right}</answer>")
    assert score.value == pytest.approx(0.75) and not score.correct
    assert score.value >= task.filter_threshold == 0.25
    # clue cells are not scored: overwriting one costs nothing
    assert task.score(four_empty, three_right[0] + "4" + three_right[2:]).value == pytest.approx(0.75)


@pytest.mark.parametrize(
    "completion",
    [
        "<answer>\n3 1 4 2\n2 4 3 1\n4 2 1 3\n1 3 2 4\n</answer>",
        "<answer>3142|2431|4213|1324</answer>",
        "<answer>3,1,4,2,2,4,3,1,4,2,1,3,1,3,2,4</answer>",
        "<reasoning>first guess 1111222233334444</reasoning>\n3142243142131324",
        "\\boxed{3142243142131324}",
        "<answer>[[3, 1, 4, 2], [2, 4, 3, 1], [4, 2, 1, 3], [1, 3, 2, 4]]</answer>",
        "The answer is:\n3 1 4 2\n2 4 3 1\n4 2 1 3\n1 3 2 4",
        "Solved:\n3142\n2431\n4213\n1324",
    ],
)
def test_answers_in_many_layouts(completion):
    example = Example(0, "3102200002100320", "3142243142131324", {"puzzle": "3102200002100320"})
    score = get_task("sudoku").score(example, completion)
    assert score.extracted == "3142243142131324" and score.correct


@pytest.mark.parametrize(
    ("completion", "status"),
    [
        ("31422431421313241111", "no_answer"),  # a last line of 20 digits is not a grid, whatever its first 16 say
        ("<answer>314224314213132</answer>", "unparsable"),  # 15 digits are never padded
        ("<answer>3142243142131324 or 3142243142131342</answer>", "hedged"),
        ("<answer>3142243142131324\n3142243142131342</answer>", "hedged"),
        ("First row is 3142 and the second", "no_answer"),
    ],
)
def test_grids_that_are_not_one_16_digit_answer_score_zero(completion, status):
    example = Example(0, "3102200002100320", "3142243142131324", {"puzzle": "3102200002100320"})
    score = get_task("sudoku").score(example, completion)
    assert (score.value, score.status) == (0.0, status)


def test_csv_round_trip_with_and_without_header(tmp_path):
    task = get_task("sudoku")
    examples = generate_sudoku(5, seed=3)
    path = tmp_path / "sudoku.csv"
    write_sudoku_csv(examples, path)
    assert path.read_text().splitlines()[0] == "Puzzle,Solution"
    assert [(e.prompt, e.answer) for e in task.load(path)] == [(e.prompt, e.answer) for e in examples]
    bare = tmp_path / "bare.csv"
    bare.write_text("3102200002100320,3142243142131324\n")
    lower = tmp_path / "lower.csv"
    lower.write_text("puzzle,solution\n3102200002100320,3142243142131324\n")
    for file in (bare, lower):
        [example] = task.load(file)
        assert (example.prompt, example.answer, example.meta) == (
            "3102200002100320", "3142243142131324", {"puzzle": "3102200002100320"})


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("31022000021003,3142243142131324", "puzzle"),  # too short
        ("31022000021003x0,3142243142131324", "puzzle"),  # not a digit
        ("3102200002100320,3142243142131323", "solution"),  # not a valid grid
        ("4000000000000000,3142243142131324", "contradicts"),  # a valid grid, but not this puzzle's
        ("3102200002100320", "column"),  # one column where the header has two
    ],
)
def test_malformed_rows_name_the_file_and_line(tmp_path, row, problem):
    path = tmp_path / "bad.csv"
    path.write_text(f"Puzzle,Solution\n3102200002100320,3142243142131324\n{row}\n")
    with pytest.raises(DataError, match=rf"bad\.csv:3.*{problem}"):
        get_task("sudoku").load(path)
