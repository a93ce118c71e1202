"""Independent jobs of an experiment (training runs, evaluations) several at a time, one process each.

The bundled models are too small to keep even one CPU core's threads busy, so a many-core machine finishes an
experiment fastest by running its jobs side by side, each process with an equal share of the threads.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Callable, Sequence

from tqdm.auto import tqdm


def _start_worker(threads: int) -> None:
    import torch
    from transformers.utils import logging as transformers_logging

    torch.set_num_threads(threads)
    transformers_logging.disable_progress_bar()  # one bar (the jobs') is enough


def in_parallel(function: Callable, arguments: Sequence[tuple], jobs: int = 1, describe: Callable = str,
                desc: str = "jobs") -> list:
    """``[function(*a) for a in arguments]``, ``jobs`` calls at a time in fresh processes (``jobs <= 1``: here, in
    order). The first failure stops the rest and is raised, after a line naming the job that failed."""
    arguments = list(arguments)
    if jobs <= 1 or len(arguments) <= 1:
        return [function(*a) for a in arguments]
    workers = min(jobs, len(arguments))
    threads = max(1, (os.cpu_count() or 1) // workers)
    results: list = [None] * len(arguments)
    context = multiprocessing.get_context("spawn")  # no forked copies of torch's thread pools
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(threads,)) as pool:
        pending = {pool.submit(function, *a): i for i, a in enumerate(arguments)}
        with tqdm(total=len(arguments), desc=desc, unit="job") as bar:
            while pending:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    index = pending.pop(future)
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        print(f"failed: {describe(arguments[index])}", file=sys.stderr)
                        raise future.exception()
                    results[index] = future.result()
                    bar.update(1)
    return results


def fill_in_parallel(function: Callable, arguments: Sequence[tuple], done: Callable, jobs: int = 1,
                     describe: Callable = str, desc: str = "jobs") -> list:
    """For calls that cache their result (a finished run, an evaluation file): makes the calls whose ``done(*a)`` is
    false ``jobs`` at a time, then returns ``[function(*a) for a in arguments]``, every one read back here."""
    missing = [a for a in arguments if not done(*a)]
    in_parallel(function, missing, jobs, describe, desc)
    return [function(*a) for a in arguments]
