"""Run jobs in dependency order, several at a time, as Pulumi's step executor does.

A job starts once every job it waits for has finished, and at most `parallel` jobs run at once: Pulumi's
`--parallel` counts running operations, never ones waiting for their dependencies (pulumi/pulumi
pkg/resource/deploy/step_executor.go: a chain is handed to a worker only when it can run). A job whose
prerequisite failed fails with the same error without running.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

Job = tuple[Hashable, Sequence[Hashable], Callable[[], None]]  # key, the keys it waits for, what it does


def run_in_order(jobs: Sequence[Job], parallel: int) -> list[Future]:
    """`jobs`: (key, keys it waits for, callable), each waiting only for jobs listed before it. Returns every
    job's future, in the order of `jobs`, once all have finished."""
    results: dict[Hashable, Future] = {}
    waiting = list(jobs)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        running: set[Future] = set()
        while waiting or running:
            for job in list(waiting):
                if len(running) >= parallel:
                    break
                key, waits, call = job
                if not all(w in results and results[w].done() for w in waits):
                    continue
                waiting.remove(job)
                failed = next((results[w] for w in waits if results[w].exception() is not None), None)
                if failed is not None:
                    results[key] = failed  # a failed prerequisite fails this one too
                    continue
                results[key] = pool.submit(call)
                running.add(results[key])
            if running:
                _, running = wait(running, return_when=FIRST_COMPLETED)
            elif waiting:
                missing = [k for k, waits, _ in waiting for w in waits if w not in results]
                raise RuntimeError(f"jobs wait for jobs never listed before them: {missing[:5]}")
    return [results[key] for key, _, _ in jobs]
