"""The server's micro-batcher: jobs that arrive together run as one call on one thread, a
lone job never waits for the window, one failing call fails only its own jobs."""

import threading
import time

import pytest

from bgbias.search.batching import MicroBatcher

WINDOW_S = 60.0  # far longer than any test waits: a batch that waited for it would time out


def held(batcher):
    """Occupies the worker until the returned event is set, so that the next jobs queue."""
    gate = threading.Event()
    batcher.submit("hold", lambda payloads: [gate.wait(30) for _ in payloads], None)
    deadline = time.monotonic() + 30
    while batcher.queued:  # the worker has not taken it yet
        assert time.monotonic() < deadline, "the worker never took the job"
        time.sleep(0.01)
    return gate


def doubled(calls):
    def run(payloads):
        calls.append(list(payloads))
        return [2 * p for p in payloads]

    return run


def test_a_lone_job_runs_without_waiting_for_the_window():
    batcher = MicroBatcher(window_s=WINDOW_S)
    calls = []
    assert batcher.submit("x", doubled(calls), 21).result(timeout=10) == 42
    batcher.close()


def test_jobs_of_requests_announced_together_run_as_one_call():
    batcher = MicroBatcher(window_s=WINDOW_S, max_batch=8)
    calls, futures = [], []
    announced = threading.Barrier(5)

    def request(value):
        with batcher.arriving():
            announced.wait(timeout=10)  # all five are decoding before any submits
            futures.append(batcher.submit("x", doubled(calls), value))

    threads = [threading.Thread(target=request, args=(v,)) for v in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(f.result(timeout=10) for f in futures) == [0, 2, 4, 6, 8]
    assert len(calls) == 1 and sorted(calls[0]) == [0, 1, 2, 3, 4]
    batcher.close()


def test_a_batch_holds_at_most_max_batch_jobs_and_groups_by_key():
    batcher = MicroBatcher(window_s=0, max_batch=3)
    gate, calls = held(batcher), []
    futures = [batcher.submit(key, doubled(calls), v) for v, key in enumerate("aabab")]
    gate.set()
    assert [f.result(timeout=10) for f in futures] == [0, 2, 4, 6, 8]
    # first batch: jobs 0-2 (keys a, a, b) -> one call per key; then jobs 3-4
    assert calls == [[0, 1], [2], [3], [4]]
    batcher.close()


def test_a_failing_call_fails_its_own_jobs_and_the_worker_keeps_going():
    batcher = MicroBatcher(window_s=0)
    gate, calls = held(batcher), []

    def broken(payloads):
        raise ValueError("the model failed")

    bad = batcher.submit("bad", broken, 1)
    good = batcher.submit("good", doubled(calls), 2)
    gate.set()
    with pytest.raises(ValueError, match="the model failed"):
        bad.result(timeout=10)
    assert good.result(timeout=10) == 4
    assert batcher.submit("good", doubled(calls), 5).result(timeout=10) == 10


def test_a_job_cancelled_while_queued_is_dropped_and_its_batch_answered():
    batcher = MicroBatcher(window_s=0)
    gate, calls = held(batcher), []
    gone = batcher.submit("x", doubled(calls), 1)
    kept = batcher.submit("x", doubled(calls), 2)
    assert gone.cancel()  # the client went away
    gate.set()
    assert kept.result(timeout=10) == 4
    assert calls == [[2]]
    assert batcher.submit("x", doubled(calls), 3).result(timeout=10) == 6


def test_close_answers_what_is_queued_then_stops_the_thread_and_a_new_job_restarts_it():
    batcher = MicroBatcher(window_s=0)
    gate, calls = held(batcher), []
    queued = batcher.submit("x", doubled(calls), 3)
    closing = threading.Thread(target=batcher.close)
    closing.start()
    gate.set()
    closing.join(timeout=30)
    assert queued.result(timeout=0) == 6
    assert not batcher.running
    assert batcher.submit("x", doubled(calls), 4).result(timeout=10) == 8
    assert batcher.running
    batcher.close()
    assert not batcher.running
