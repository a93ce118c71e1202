"""The bundled Sudoku model through lm-eval (dopsd_sudoku: dopsd's prompts and scoring) and through dopsd eval, on
the first LIMIT held-out puzzles (all without LIMIT): accuracies, times, identical completions.

    python scripts/compare_lm_eval.py [LIMIT [TASK_FOLDER]]
"""
import sys
import time

from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

from dopsd.evaluation import evaluate
from dopsd.lmeval_tasks import write_task
from dopsd.models import load_diffusion_lm
from dopsd.sampling import SamplerConfig
from dopsd.tasks import get_task, load_examples

limit = int(sys.argv[1]) if len(sys.argv) > 1 else None
name = write_task("sudoku", "bundled:sudoku", sys.argv[2] if len(sys.argv) > 2 else "lm_eval_tasks", gen_length=20,
                  limit=limit)
t=time.time()
r = simple_evaluate(model="dopsd", model_args="pretrained=bundled:sudoku,gen_length=20,block_length=4", tasks=[name],
                    task_manager=TaskManager(include_path=sys.argv[2] if len(sys.argv) > 2 else "lm_eval_tasks"),
                    batch_size=250, device="cpu", log_samples=True)
print("lm-eval", r["results"][name], time.time()-t)
t=time.time()
lm = load_diffusion_lm("bundled:sudoku", device="cpu")
task = get_task("sudoku")
rows, summary = evaluate(lm, task, load_examples(task, "bundled:sudoku", "test", limit),
                         SamplerConfig(gen_length=20, block_length=4), batch_size=250, progress=False)
print("dopsd eval", summary.to_dict(), time.time()-t)
samples = sorted(r["samples"][name], key=lambda s: s["doc_id"])
same = sum(s["resps"][0][0] == row["completion"] for s, row in zip(samples, rows))
print("identical completions", same, len(rows))
