"""The ordered run-ahead stage that lets `analyze` detect one frame while it classifies the previous one."""

from __future__ import annotations

import threading

import pytest

from app.pipeline import run_ahead


def test_results_come_in_order_paired_with_their_items():
    assert list(run_ahead(range(50), lambda n: n * n)) == [(n, n * n) for n in range(50)]


def test_the_stage_runs_on_another_thread_while_the_consumer_works():
    consumer = threading.get_ident()
    stage_threads = set()
    ahead = threading.Event()

    def stage(n):
        stage_threads.add(threading.get_ident())
        if n == 1:
            ahead.set()  # item 1 is processed while the consumer still holds item 0
        return n

    for n, _ in run_ahead(range(3), stage):
        if n == 0:
            assert ahead.wait(5.0), "the stage did not run ahead of the consumer"
    assert stage_threads and consumer not in stage_threads


def test_it_runs_at_most_depth_items_ahead():
    started = []
    gen = run_ahead(range(100), lambda n: started.append(n) or n, depth=2)
    assert next(gen) == (0, 0)
    threading.Event().wait(0.2)
    # item 0 is consumed; at most `depth` results wait in the queue and one more may be in the stage's hands
    assert len(started) <= 1 + 2 + 1
    gen.close()


def test_an_error_in_the_stage_arrives_after_the_results_before_it():
    def stage(n):
        if n == 3:
            raise ValueError("bad frame 3")
        return n

    seen = []
    with pytest.raises(ValueError, match="bad frame 3"):
        for n, _ in run_ahead(range(10), stage):
            seen.append(n)
    assert seen == [0, 1, 2]


def test_an_error_from_the_items_is_raised_to_the_consumer():
    def items():
        yield 1
        raise OSError("source died")

    with pytest.raises(OSError, match="source died"):
        list(run_ahead(items(), lambda n: n))


def test_leaving_early_closes_the_source_generator_on_the_worker_thread():
    closed_on = []

    def items():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed_on.append(threading.get_ident())

    stages = run_ahead(items(), lambda n: n)
    for n, _ in stages:
        if n == 5:
            break
    stages.close()
    assert len(closed_on) == 1 and closed_on[0] != threading.get_ident()


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        next(run_ahead(range(3), lambda n: n, depth=0))
