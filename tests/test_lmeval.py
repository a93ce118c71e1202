"""lm-evaluation-harness with `--model dopsd`: local tasks (YAML + jsonl written here) on tiny models, offline."""

import json

import pytest
import torch

pytest.importorskip("lm_eval")  # in the test extra: CI installs it, so these always run there

from lm_eval import simple_evaluate  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from dopsd.errors import DopsdError  # noqa: E402
from dopsd.lmeval import DopsdLM, cut_at, stratified_masks  # noqa: E402
from dopsd.models import create_builtin_model  # noqa: E402

QUESTIONS = [("12+3=", "15"), ("7=", "7"), ("1000-999=", "1"), ("2*4=", "8"), ("9-3=", "6")]


def save_model(folder, **overrides):
    lm = create_builtin_model(seed=0, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, **overrides)
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return str(folder)


def write_tasks(folder):
    rows = [{"question": q, "answer": a, "choices": [a, str(int(a) + 1), "0"], "label": 0} for q, a in QUESTIONS]
    data = folder / "toy.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    common = f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
    (folder / "toy_gen.yaml").write_text(
        f"task: dopsd_toy_gen\n{common}output_type: generate_until\ndoc_to_text: \"{{{{question}}}}\"\n"
        "doc_to_target: \"{{answer}}\"\ngeneration_kwargs:\n  until: [\"\\n\", \"=\"]\n  max_gen_toks: 8\n"
        "metric_list:\n  - metric: exact_match\n")
    (folder / "toy_mc.yaml").write_text(
        f"task: dopsd_toy_mc\n{common}output_type: multiple_choice\ndoc_to_text: \"{{{{question}}}}\"\n"
        "doc_to_choice: \"{{choices}}\"\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n")
    return TaskManager(include_path=str(folder))


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    return write_tasks(tmp_path_factory.mktemp("lmeval_tasks"))


def evaluate(model_args, tasks, task, batch_size):
    results = simple_evaluate(model="dopsd", model_args=model_args, tasks=[task], task_manager=tasks,
                              batch_size=batch_size, device="cpu", log_samples=True, random_seed=0,
                              numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)
    samples = sorted(results["samples"][task], key=lambda sample: sample["doc_id"])
    return results["results"][task], [sample["resps"] for sample in samples]


@pytest.mark.slow
@pytest.mark.parametrize("layout", [{}, {"attention_layout": "block", "block_size": 4}], ids=["full", "block"])
def test_generate_until_and_multiple_choice_run_and_batches_equal_rows(layout, tasks, tmp_path):
    model = save_model(tmp_path / "model", **layout)
    args = f"pretrained={model},gen_length=8,mc_num=8,mc_batch_size=4"
    for task in ("dopsd_toy_gen", "dopsd_toy_mc"):
        metrics, batched = evaluate(args, tasks, task, batch_size=4)
        _, alone = evaluate(args, tasks, task, batch_size=1)
        assert batched == alone  # a batch gives what its requests give one by one
        assert any(key.startswith("exact_match" if task.endswith("gen") else "acc") for key in metrics)
    _, mc = evaluate(args, tasks, "dopsd_toy_mc", batch_size=2)
    assert len(mc) == len(QUESTIONS) and all(len(choices) == 3 for choices in mc)


def test_generation_is_the_sampler_cut_at_until(tmp_path):
    from dopsd.models import load_diffusion_lm
    from dopsd.sampling import BlockDiffusionSampler, SamplerConfig

    folder = save_model(tmp_path / "model")
    backend = DopsdLM(pretrained=folder, gen_length=8, block_length=4, device="cpu")

    class Request:
        def __init__(self, context):
            self.arguments = (context, {"until": ["3"], "max_gen_toks": 99})

    got = backend.generate_until([Request(q) for q, _ in QUESTIONS], disable_tqdm=True)
    lm = load_diffusion_lm(folder, device="cpu")
    sampler = BlockDiffusionSampler(lm, SamplerConfig(gen_length=8, block_length=4))
    for (question, _), text in zip(QUESTIONS, got):
        expected = lm.decode(sampler.sample([lm.tokenizer(question)["input_ids"]])[0].tokens)
        assert text == cut_at(expected, ["3"])
    assert backend.timing["samples"] == 5 and backend.timing["generated_tokens"] == 40


def test_the_monte_carlo_estimate_by_hand(tmp_path):
    """mc_num draws, each masking l of the L continuation tokens, cross-entropy weighted by L / l, averaged."""
    backend = DopsdLM(pretrained=save_model(tmp_path / "model"), mc_num=4, mc_batch_size=2, seed=3, device="cpu")
    value, greedy = backend.continuation_loglikelihood("12+3=", "15")
    prefix, target = backend.split_tokens("12+3=", "15")
    lm, generator, total = backend.lm, torch.Generator().manual_seed(3), 0.0
    for _ in range(2):
        masked, ratio = stratified_masks(2, len(target), generator)
        for row in range(2):
            state = [lm.tokens.mask if m else t for m, t in zip(masked[row].tolist(), target)]
            logits = lm.logits(torch.tensor([prefix + state]))[0, len(prefix):]
            loss = torch.nn.functional.cross_entropy(logits, torch.tensor(target), reduction="none")
            total += float((loss * masked[row]).sum().detach() / ratio[row])
    assert value == pytest.approx(-total / 4, rel=1e-5)
    assert isinstance(greedy, bool)


def test_stratified_masks_cover_every_count():
    masked, ratio = stratified_masks(8, 8, torch.Generator().manual_seed(0))
    counts = masked.sum(1)
    assert sorted(counts.tolist()) == list(range(1, 9)) and torch.allclose(ratio, counts / 8)


def test_a_lora_checkpoint_scores_as_its_merged_export(tmp_path):
    from peft import LoraConfig, get_peft_model

    from dopsd.models import load_diffusion_lm
    from dopsd.models.export import export_model

    base = save_model(tmp_path / "base")
    lm = load_diffusion_lm(base, device="cpu")
    torch.manual_seed(1)
    peft = get_peft_model(lm.model, LoraConfig(r=4, lora_alpha=8, target_modules=["qkv", "out"],
                                               init_lora_weights=False))
    peft.save_pretrained(tmp_path / "adapter")
    lm.tokenizer.save_pretrained(tmp_path / "adapter")
    export_model(tmp_path / "adapter", tmp_path / "merged")
    adapter = DopsdLM(pretrained=str(tmp_path / "adapter"), mc_num=4, mc_batch_size=4, device="cpu")
    merged = DopsdLM(pretrained=str(tmp_path / "merged"), mc_num=4, mc_batch_size=4, device="cpu")
    plain = DopsdLM(pretrained=base, mc_num=4, mc_batch_size=4, device="cpu")
    for question, answer in QUESTIONS[:3]:
        a, b = adapter.continuation_loglikelihood(question, answer), merged.continuation_loglikelihood(question, answer)
        assert a[0] == pytest.approx(b[0], rel=1e-5) and a[1] == b[1]
    assert adapter.continuation_loglikelihood("12+3=", "15")[0] != plain.continuation_loglikelihood("12+3=", "15")[0]


def test_what_is_refused(tmp_path):
    folder = save_model(tmp_path / "model")
    with pytest.raises(DopsdError, match="multiple of mc_batch_size"):
        DopsdLM(pretrained=folder, mc_num=10, mc_batch_size=4)
    with pytest.raises(DopsdError, match="unknown dopsd model_args: colour"):
        DopsdLM(pretrained=folder, colour="red")
    with pytest.raises(DopsdError, match="not defined for a masked diffusion LM"):
        DopsdLM(pretrained=folder).loglikelihood_rolling([])


@pytest.mark.slow
def test_the_command_line_wrapper_lists_the_dopsd_model(tmp_path, capsys):
    from dopsd.cli import main

    model = save_model(tmp_path / "model")
    folder = tmp_path / "tasks"
    folder.mkdir()
    write_tasks(folder)
    code = main(["lm-eval", "--model", "dopsd", "--model_args", f"pretrained={model},gen_length=8", "--tasks",
                 "dopsd_toy_gen", "--include_path", str(folder), "--device", "cpu", "--batch_size", "4"])
    assert code == 0
    assert "dopsd_toy_gen" in capsys.readouterr().out


@pytest.mark.slow
def test_the_bundled_sudoku_model_scores_in_lm_eval_as_in_dopsd_eval(tmp_path):
    from dopsd.evaluation import evaluate as dopsd_evaluate
    from dopsd.lmeval_tasks import write_task
    from dopsd.models import load_diffusion_lm
    from dopsd.sampling import SamplerConfig
    from dopsd.tasks import get_task, load_examples

    name = write_task("sudoku", "bundled:sudoku", tmp_path, gen_length=20, limit=40)
    results = simple_evaluate(model="dopsd", model_args="pretrained=bundled:sudoku,gen_length=20,block_length=4",
                              tasks=[name], task_manager=TaskManager(include_path=str(tmp_path)), batch_size=40,
                              device="cpu", log_samples=True)
    task = get_task("sudoku")
    rows, summary = dopsd_evaluate(load_diffusion_lm("bundled:sudoku", device="cpu"), task,
                                   load_examples(task, "bundled:sudoku", "test", 40),
                                   SamplerConfig(gen_length=20, block_length=4), batch_size=40, progress=False)
    samples = sorted(results["samples"][name], key=lambda sample: sample["doc_id"])
    assert [sample["resps"][0][0] for sample in samples] == [row["completion"] for row in rows]
    assert results["results"][name]["acc,none"] == summary.accuracy
    assert results["results"][name]["mean_score,none"] == pytest.approx(summary.mean_score)


@pytest.mark.slow
def test_two_processes_under_accelerate_give_the_single_process_results(tmp_path):
    """lm-eval's data-parallel launch: two CPU processes (gloo) share the requests; the gathered samples and
    metrics equal one process's."""
    import os
    import shutil
    import subprocess
    import sys

    from dopsd.lmeval_tasks import write_task

    folder = tmp_path / "tasks"
    task = write_task("sudoku", "bundled:sudoku", folder, gen_length=20, limit=5)  # five different completions
    model_args = "pretrained=bundled:sudoku,gen_length=20,block_length=4"
    single, alone = evaluate(model_args, TaskManager(include_path=str(folder)), task, batch_size=2)
    assert len({resps[0][0] for resps in alone}) > 1
    launcher = shutil.which("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "-m", "dopsd.lmeval", "--model", "dopsd", "--model_args", model_args,
         "--tasks", task, "--include_path", str(folder), "--device", "cpu",
         "--batch_size", "2", "--output_path", str(tmp_path / "out"), "--log_samples"],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted((tmp_path / "out").rglob(f"samples_{task}_*.jsonl"))
    assert len(written) == 1, [str(p) for p in (tmp_path / "out").rglob("*")]
    samples = sorted((json.loads(line) for line in written[0].read_text().splitlines()), key=lambda s: s["doc_id"])
    # (a process with fewer requests repeats its last one to keep the processes in step, lm-eval's padding)
    assert [sample["resps"][0][0] for sample in samples] == [resps[0][0] for resps in alone]
    results = json.loads(sorted((tmp_path / "out").rglob("results_*.json"))[0].read_text())["results"][task]
    assert results["acc,none"] == single["acc,none"] and results["mean_score,none"] == single["mean_score,none"]
