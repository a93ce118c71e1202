"""Mistaken and hostile inputs across the command line: each ends with exit status 2 and exactly one `error:` line on
stderr, no traceback, and nothing created or changed on disk."""

import json
import os
import shutil

import pytest

from dopsd.cli import main

BAD_YAML = "passk: [\n"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "random"
    assert main(["create-model", str(folder), "--hidden-size", "32", "--layers", "1", "--heads", "2"]) == 0
    return str(folder)


@pytest.fixture(scope="module")
def truncated(model, tmp_path_factory):
    """A copy of the model whose weights file was cut short (an interrupted download or copy)."""
    folder = tmp_path_factory.mktemp("model") / "truncated"
    shutil.copytree(model, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return str(folder)


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    """A remote-code (LLaDA-like) model folder whose own forward raises: it loads, and fails at the load-time probe."""
    from doubles import write_failing_forward

    return str(write_failing_forward(tmp_path_factory.mktemp("model") / "llada_failing"))


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """A remote-code (LLaDA-like) diffusion LM folder: a model that is no causal teacher."""
    from doubles import write_llada_like

    return str(write_llada_like(tmp_path_factory.mktemp("model") / "llada_remote"))


def workspace(root):
    """Files the cases point at, made before each case and compared after it."""
    (root / "bad.yaml").write_text(BAD_YAML)
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "unknown.yaml").write_text("unknown_field: 1\n")
    (root / "bad.csv").write_text("Puzzle,Solution\n1234,5678\n")
    (root / "dup.jsonl").write_text('{"index": 0, "completion": "1"}\n{"index": 0, "completion": "2"}\n')
    (root / "outside.jsonl").write_text('{"index": 999, "completion": "1"}\n')
    (root / "malformed.jsonl").write_text('{"index": 0, "completion": \n')
    (root / "afile.txt").write_text("a file, not a folder\n")
    (root / "unclosed.md").write_text("# Report\n<!-- begin results/toy.md -->\nold table\n")
    (root / "nonempty").mkdir(exist_ok=True)
    (root / "nonempty" / "keep.txt").write_text("keep\n")
    (root / "oldrun").mkdir(exist_ok=True)
    (root / "oldrun" / "metrics.jsonl").write_text('{"update": 0}\n')
    (root / "infinite.yaml").write_text("temperature: .inf\n")
    (root / "twice.yaml").write_text("seed: 1\ntask: sudoku\nseed: 2\n")
    (root / "latin1.yaml").write_bytes("task: 'caf\u00e9'\n".encode("latin-1"))
    (root / "latin1.csv").write_bytes("Puzzle,Solution\n1234,caf\u00e9\n".encode("latin-1"))
    (root / "latin1.jsonl").write_bytes('{"index": 0, "completion": "caf\u00e9"}\n'.encode("latin-1"))
    (root / "empty.jsonl").write_text("")
    (root / "adapter").mkdir(exist_ok=True)
    (root / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x"}))


def snapshot(root) -> dict:
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(root.rglob("*"))}


TRAIN = ["--task", "sudoku", "--train-data", "sample", "--eval-data", "sample"]

CASES = {
    # the command line itself
    "unknown command": (["nosuch"], "invalid choice"),
    "unknown field": (["train", "--passs", "3"], "did you mean --passk?"),
    "stray word": (["train", "stray"], "unexpected argument"),
    "field of another method": (["sft", "--passk", "2"], "unknown option --passk"),
    "abbreviated field": (["train", "--teacher-ret", "0.5"], "unknown option --teacher-ret"),
    "missing prompt": (["sample", "--model", "{model}"], "--prompt"),
    "unknown experiment": (["experiment", "nosuch"], "invalid choice"),
    "no jobs": (["experiment", "main", "--jobs", "0"], "--jobs must be at least 1"),
    "missing report": (["experiment", "toy", "--document", "missing.md"], "--document missing.md does not exist"),
    "unclosed quote in the report": (["experiment", "toy", "--document", "unclosed.md"],
                                     "has no '<!-- end results/toy.md -->' line"),
    # config values and files
    "not a number": (["train", "--passk", "many"], "'passk' = 'many' must be int"),
    "zero passk": (["train", "--passk", "0"], "'passk' = 0 must be at least 1"),
    "rho above one": (["train", "--teacher-retain-ratio", "1.5"], "'teacher_retain_ratio'"),
    "negative clip": (["train", "--clip", "-1"], "'clip'"),
    "unknown divergence": (["train", "--divergence", "l2"], "'divergence'"),
    "unknown precision": (["train", "--mixed-precision", "fp8"], "'mixed_precision'"),
    "one generation": (["grpo", "--num-generations", "1"], "'num_generations'"),
    "negative beta": (["grpo", "--beta", "-1"], "'beta'"),
    "empty batch": (["sft", "--batch-size", "0"], "'batch_size'"),
    "steps out of range": (["train", "--steps", "1000"], "'steps'"),
    "missing config": (["train", "--config", "missing.yaml"], "config file not found"),
    "unparseable config": (["train", "--config", "bad.yaml"], "bad.yaml:2: not valid YAML"),
    "config not a mapping": (["train", "--config", "list.yaml"], "expected a mapping"),
    "unknown config field": (["train", "--config", "unknown.yaml"], "unknown config field"),
    "repeated config key": (["train", "--config", "twice.yaml"], "twice.yaml:3: not valid YAML (key 'seed' appears "
                            "twice (first on line 1))"),
    "config not UTF-8": (["train", "--config", "latin1.yaml"], "latin1.yaml: not UTF-8 text"),
    # non-finite numbers, wherever a number is read
    "infinite learning rate": (["train", "--learning-rate", "inf"],
                               "'learning_rate' = 'inf' must be a finite number"),
    "nan learning rate": (["sft", "--learning-rate", "nan"], "'learning_rate' = 'nan' must be a finite number"),
    "nan clip": (["train", "--clip", "nan"], "'clip' = 'nan' must be a finite number"),
    "infinite temperature in a config": (["grpo", "--config", "infinite.yaml"],
                                         "'temperature' = inf must be a finite number"),
    "infinite sampling temperature": (["sample", "--model", "{model}", "--prompt", "x", "--temperature", "inf"],
                                      "--temperature: 'inf' is not a finite number"),
    "nan sampling temperature": (["sample", "--model", "{model}", "--prompt", "x", "--temperature", "nan"],
                                 "--temperature: 'nan' is not a finite number"),
    "nan evaluation temperature": (["eval", "--model", "{model}", "--task", "sudoku", "--data", "sample",
                                    "--temperature", "nan"], "--temperature: 'nan' is not a finite number"),
    "infinite threshold": (["sample", "--model", "{model}", "--prompt", "x", "--threshold=-inf"],
                           "--threshold: '-inf' is not a finite number"),
    "infinite bench temperature": (["bench", "--temperature", "inf"], "--temperature: 'inf' is not a finite number"),
    # data and tasks
    "unknown task": (["train", "--task", "nosuch", "--model", "{model}"], "unknown task 'nosuch'"),
    "no training split": (["train", "--task", "math500", "--model", "{model}"], "has no train split"),
    "no hub set": (["train", "--task", "sudoku", "--model", "{model}"], "pass a local data file"),
    "missing data file": (["eval", "--model", "{model}", "--task", "sudoku", "--data", "missing.csv"],
                          "data file not found"),
    "malformed data row": (["eval", "--model", "{model}", "--task", "sudoku", "--data", "bad.csv"], "bad.csv:2"),
    "data file not UTF-8": (["eval", "--model", "{model}", "--task", "sudoku", "--data", "latin1.csv"],
                            "latin1.csv:2: not UTF-8 text (byte 0xe9)"),
    "unknown bundle data": (["eval", "--model", "{model}", "--task", "sudoku", "--data", "bundled:nosuch"],
                            "no bundled model for task 'nosuch'"),
    # output places
    "output dir is a file": (["train", "--model", "{model}", "--output-dir", "afile.txt", *TRAIN], "is a file"),
    "output dir holds a run": (["train", "--model", "{model}", "--output-dir", "oldrun", *TRAIN],
                               "already holds a run"),
    "output dir under a file": (["train", "--model", "{model}", "--output-dir", "afile.txt/run", *TRAIN],
                                "cannot be created"),
    "completion longer than gen_length": (["sft", "--model", "{model}", *TRAIN, "--output-dir", "run",
                                           "--gen-length", "8", "--block-length", "4"],
                                          "16-token completion does not fit gen_length=8 with an EOS"),
    "prompt and response past the model's positions": (
        ["sft", "--model", "{model}", *TRAIN, "--output-dir", "run", "--gen-length", "500", "--block-length", "4"],
        "the training data: a prompt of 17 tokens plus a response of 500 needs 517 positions, more than this model's "
        "512"),
    "nothing to resume": (["train", "--model", "{model}", "--output-dir", "fresh", "--resume-from", "latest", *TRAIN],
                          "no complete checkpoint"),
    "eval output is a folder": (["eval", "--model", "{model}", "--task", "sudoku", "--data", "sample", "--output",
                                 "nonempty"], "is a folder"),
    "eval output under a file": (["eval", "--model", "{model}", "--task", "sudoku", "--data", "sample", "--output",
                                  "afile.txt/rows.jsonl"], "is a file"),
    "create over a file": (["create-model", "afile.txt"], "is a file"),
    "create over a model": (["create-model", "nonempty"], "not empty"),
    "experiment output is a file": (["experiment", "toy", "--output", "afile.txt"], "--output afile.txt is a file"),
    # models
    "no model folder": (["sample", "--model", "/nonexistent/model", "--prompt", "x"], "no model folder"),
    "training a missing model": (["train", "--model", "./missing-model", *TRAIN, "--output-dir", "run"],
                                 "no model folder"),
    "unreachable hub model": (["sample", "--model", "someorg/somemodel", "--prompt", "x"], "out of reach"),
    "unknown bundled model": (["sample", "--model", "bundled:nosuch", "--prompt", "x"], "no bundled model"),
    "adapter folder": (["sample", "--model", "adapter", "--prompt", "x"], "holds a LoRA adapter"),
    "truncated weights": (["sample", "--model", "{truncated}", "--prompt", "x"],
                          "truncated/model.safetensors: it is truncated or damaged"),
    "training truncated weights": (["sft", "--model", "{truncated}", *TRAIN, "--output-dir", "run"],
                                   "truncated/model.safetensors: it is truncated or damaged"),
    "forward fails at the load-time probe": (
        ["sample", "--model", "{failing}", "--trust-remote-code", "--prompt", "x"],
        "llada_failing' fails in its own forward pass (its remote code) on a tiny input right after loading: "
        "RuntimeError: shape mismatch in the double's attention (a deliberate failure) in modeling_llada.py line"),
    "training a model whose forward fails": (
        ["sft", "--model", "{failing}", "--trust-remote-code", *TRAIN, "--output-dir", "run"],
        "fails in its own forward pass (its remote code)"),
    "remote-code teacher, code trusted": (
        ["opdlm", "--model", "{remote}", "--trust-remote-code", *TRAIN, "--output-dir", "run"],
        "llada_remote' is a 'llada' model, not an autoregressive (causal) LM"),
    "remote-code teacher, code not trusted": (["opdlm", "--model", "{remote}", *TRAIN, "--output-dir", "run"],
                                              "llada_remote' ships its own code: pass --trust-remote-code"),
    "convert a missing model": (["convert", "--model", "/nonexistent/lm", "--output", "converted"], "cannot load"),
    "mask id beyond vocabulary": (["sample", "--model", "{model}", "--prompt", "x", "--mask-token-id", "99999"],
                                  "outside this model's vocabulary"),
    "cuda without cuda": (["sample", "--model", "{model}", "--prompt", "x", "--device", "cuda"], "no CUDA device"),
    # sampling
    "empty prompt": (["sample", "--model", "{model}", "--prompt", ""], "the prompt is empty"),
    "blank prompt": (["sample", "--model", "{model}", "--prompt", "   \n"], "the prompt is empty"),
    "missing prompt file": (["sample", "--model", "{model}", "--prompt-file", "missing.txt"],
                            "cannot read the prompt file"),
    "response too long": (["sample", "--model", "{model}", "--prompt", "x", "--gen-length", "1000"],
                          "more than this model's 512"),
    "prompt too long": (["sample", "--model", "{model}", "--prompt", "x" * 600], "more than this model's 512"),
    "eval too long": (["eval", "--model", "{model}", "--task", "sudoku", "--data", "sample", "--gen-length", "600"],
                      "more than this model's 512"),
    "not a sudoku puzzle": (["sample", "--model", "{model}", "--task", "sudoku", "--prompt", "12="],
                            "--task sudoku: '12=' is not a sudoku puzzle: give the puzzle as 16 digits 0-4"),
    "countdown without its target": (["sample", "--model", "{model}", "--task", "countdown", "--prompt", "3,5,7"],
                                     "is not a countdown instance (no '>' before the target)"),
    "unknown sampling task": (["sample", "--model", "{model}", "--task", "nosuch", "--prompt", "x"],
                              "invalid choice"),
    "prompt style without a task": (["sample", "--model", "{model}", "--prompt", "x", "--prompt-style", "compact"],
                                    "--prompt-style needs --task"),
    "chat with a task": (["sample", "--model", "{model}", "--task", "gsm8k", "--prompt", "x", "--chat"],
                         "--chat and --task"),
    "unknown remasking": (["sample", "--model", "{model}", "--prompt", "x", "--remasking", "nope"], "invalid choice"),
    "threshold above one": (["sample", "--model", "{model}", "--prompt", "x", "--threshold", "2"], "'threshold'"),
    # scoring saved completions
    "missing completions": (["score", "--task", "sudoku", "--data", "sample", "--completions", "missing.jsonl"],
                            "completions file not found"),
    "duplicated index": (["score", "--task", "sudoku", "--data", "sample", "--completions", "dup.jsonl"],
                         "index 0 appears twice"),
    "index outside the data": (["score", "--task", "sudoku", "--data", "sample", "--completions", "outside.jsonl"],
                               "index 999 is outside"),
    "malformed completions": (["score", "--task", "sudoku", "--data", "sample", "--completions", "malformed.jsonl"],
                              "malformed.jsonl:1"),
    "empty completions": (["score", "--task", "sudoku", "--data", "sample", "--completions", "empty.jsonl"],
                          "empty.jsonl holds no completions"),
    "completions not UTF-8": (["score", "--task", "sudoku", "--data", "sample", "--completions", "latin1.jsonl"],
                              "latin1.jsonl:1: not UTF-8 text"),
}


def test_the_table_is_large():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_is_one_error_line_and_changes_nothing(name, model, truncated, failing, remote, tmp_path,
                                                          monkeypatch, capsys):
    arguments, message = CASES[name]
    folders = {"{model}": model, "{truncated}": truncated, "{failing}": failing, "{remote}": remote}
    for placeholder, folder in folders.items():
        arguments = [argument.replace(placeholder, folder) for argument in arguments]
    one_error_line_and_nothing_changed(arguments, message, tmp_path, monkeypatch, capsys)


def one_error_line_and_nothing_changed(arguments, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is out of reach in every environment this runs in
    from dopsd.hub import hub_unreachable

    hub_unreachable.cache_clear()
    workspace(tmp_path)

    def no_questions(*args):  # e.g. transformers' "Do you wish to run the custom code? [y/N]"
        raise AssertionError(f"the command asked a question: {args}")

    monkeypatch.setattr("builtins.input", no_questions)
    before = snapshot(tmp_path)
    try:
        code = main(arguments)
    except SystemExit as exit_info:
        code = exit_info.code
    hub_unreachable.cache_clear()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert snapshot(tmp_path) == before
    assert os.listdir(tmp_path)  # the workspace is still there


def test_an_unwritable_output_folder_is_refused_before_a_model_loads(tmp_path, monkeypatch, capsys):
    """As root every folder passes a permission check, so the refusal is shown with a folder said to be read-only;
    the model to convert does not exist, so a refusal that came after loading would name the model instead."""
    from dopsd import paths

    locked = tmp_path / "readonly"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(paths.os, "access",
                        lambda path, mode: not str(os.path.abspath(path)).startswith(str(locked))
                        and real_access(path, mode))
    for arguments in (["convert", "--model", "/nonexistent/lm", "--output", "readonly/converted"],
                      ["create-model", "readonly/new"],
                      ["experiment", "toy", "--output", "readonly/results"],
                      ["train", "--model", "/nonexistent/lm", "--output-dir", "readonly/run", *TRAIN]):
        one_error_line_and_nothing_changed(arguments, "readonly is not writable", tmp_path, monkeypatch, capsys)


def test_a_refused_run_leaves_its_output_folder_to_a_corrected_one(model, tmp_path, monkeypatch, capsys):
    """SFT's completion check runs before the run folder is written or the base model evaluated: the corrected run
    then starts in the same folder (it used to be refused there as "already holds a run")."""
    run = ["sft", "--model", model, *TRAIN, "--output-dir", "run", "--block-length", "4", "--max-updates", "1",
           "--eval-limit", "2", "--batch-size", "2", "--progress", "false"]
    one_error_line_and_nothing_changed([*run, "--gen-length", "8"], "does not fit gen_length=8", tmp_path,
                                       monkeypatch, capsys)
    assert main([*run, "--gen-length", "20"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["updates"] == 1
