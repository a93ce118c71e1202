import json

import pytest
import torch
from conftest import fixed_logits_lm

from dopsd.cli import main
from dopsd.evaluation import evaluate, write_jsonl
from dopsd.models import build_char_tokenizer
from dopsd.sampling import SamplerConfig
from dopsd.tasks import get_task, sample_data_path


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


@pytest.mark.parametrize("task", ["sudoku", "countdown", "gsm8k", "math500"])
def test_eval_on_a_random_builtin_model_matches_score(tmp_path, capsys, task):
    model = tmp_path / "model"
    main(["create-model", str(model), "--hidden-size", "32", "--layers", "1", "--heads", "2"])
    capsys.readouterr()
    output = tmp_path / "rows.jsonl"
    args = ["eval", "--model", str(model), "--task", task, "--data", "sample", "--limit", "8", "--gen-length", "16",
            "--block-length", "8", "--batch-size", "3", "--output", str(output), "--no-progress"]
    assert main(args) == 0
    summary = last_json(capsys.readouterr().out)
    assert summary["task"] == task and summary["n"] == 8 and summary["tokens_per_second"] > 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(8))
    assert main(["score", "--task", task, "--data", "sample", "--completions", str(output)]) == 0
    rescored = last_json(capsys.readouterr().out)
    assert (rescored["accuracy"], rescored["mean_score"], rescored["n"]) == (
        summary["accuracy"], summary["mean_score"], summary["n"])


def spelling_model(text: str, tokenizer, prompt_width: int):
    """A mock LM whose greedy response spells ``text`` then EOS, whatever the prompt."""
    ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    table = torch.zeros(prompt_width + len(ids), len(tokenizer))
    for position, token in enumerate(ids):
        table[prompt_width + position, token] = 10.0
    return fixed_logits_lm(table, mask=tokenizer.mask_token_id, eos=tokenizer.eos_token_id), len(ids)


def test_eval_scores_the_decoded_completion_and_score_agrees(tmp_path, capsys):
    task = get_task("sudoku")
    examples = task.load(sample_data_path("sudoku"))
    tokenizer = build_char_tokenizer()
    lm, length = spelling_model(examples[0].answer, tokenizer, prompt_width=17)
    lm.tokenizer = tokenizer
    with pytest.warns(UserWarning):
        rows, summary = evaluate(lm, task, examples,
                                 SamplerConfig(gen_length=length, block_length=length, steps=length),
                                 style="compact", progress=False)
    assert rows[0]["completion"] == examples[0].answer and rows[0]["correct"]
    assert summary.accuracy >= 1 / len(examples) and 0 < summary.mean_score < 1
    write_jsonl(tmp_path / "rows.jsonl", rows)
    assert main(["score", "--task", "sudoku", "--data", "sample", "--completions", str(tmp_path / "rows.jsonl")]) == 0
    rescored = last_json(capsys.readouterr().out)
    assert rescored["accuracy"] == pytest.approx(summary.accuracy)
    assert rescored["mean_score"] == pytest.approx(summary.mean_score)


def test_score_accepts_bare_answers_and_rejects_bad_lines(tmp_path, capsys):
    examples = get_task("countdown").load(sample_data_path("countdown"))
    task = get_task("countdown")
    completions = tmp_path / "c.jsonl"
    completions.write_text("".join(
        json.dumps({"index": e.index, "completion": task.reference_completion(e, "compact")}) + "\n"
        for e in examples))
    assert main(["score", "--task", "countdown", "--data", "sample", "--completions", str(completions)]) == 0
    assert last_json(capsys.readouterr().out)["accuracy"] == 1.0
    completions.write_text('{"index": 0, "completion": "1+2"}\nnot json\n')
    assert main(["score", "--task", "countdown", "--data", "sample", "--completions", str(completions)]) == 2
    assert "c.jsonl:2" in capsys.readouterr().err
    assert main(["eval", "--model", "x", "--task", "countdown", "--data", str(tmp_path / "absent.jsonl")]) == 2
    assert "absent.jsonl" in capsys.readouterr().err


def test_score_reports_answerless_hedged_and_unparsable_rows_and_writes_each_extraction(tmp_path, capsys):
    examples = get_task("gsm8k").load(sample_data_path("gsm8k"))
    first, second = examples[0].answer, examples[1].answer  # 72 and 10
    completions = [f"<answer>\\boxed{{{first}}}</answer>", f"The answer is {second} or 11.", "It costs 3 and then",
                   "<answer>no idea</answer>", f"\\boxed{{{examples[4].answer}}}"]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"index": i, "completion": c}) + "\n" for i, c in enumerate(completions)))
    output = tmp_path / "rows.jsonl"
    assert main(["score", "--task", "gsm8k", "--data", "sample", "--completions", str(path),
                 "--output", str(output)]) == 0
    summary = last_json(capsys.readouterr().out)
    assert (summary["accuracy"], summary["no_answer"], summary["hedged"], summary["unparsable"]) == (0.4, 1, 1, 1)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(row["extracted"], row["status"], row["source"]) for row in rows] == [
        ("72", "answered", "tag"), ("10 | 11", "hedged", "phrase"), (None, "no_answer", "none"),
        (None, "unparsable", "tag"), ("624", "answered", "boxed")]
    assert main(["score", "--task", "gsm8k", "--data", "sample", "--completions", str(path), "--scoring", "d1"]) == 0
    published = last_json(capsys.readouterr().out)
    assert (published["scoring"], published["accuracy"]) == ("d1", 0.4)  # the first and last rows have a box/tag
    with pytest.raises(SystemExit) as refused:
        main(["score", "--task", "gsm8k", "--data", "sample", "--completions", str(path), "--scoring", "x"])
    assert refused.value.code == 2 and capsys.readouterr().err.count("error:") == 1
