"""ApproximateTimeSync against message_filters' semantics: the issue's cases, arrival order, and random
streams compared with a second, brute-force formulation of the upstream rule."""

from __future__ import annotations

import itertools
import random

import pytest

from radseg_core.approx_sync import ApproximateTimeSync

MS = 1_000_000  # ns


def run(arrivals, n=3, slop=0.020, queue=10):
    out = []
    sync = ApproximateTimeSync(n, queue, slop, lambda *m: out.append(m))
    for topic, stamp_ns in arrivals:
        sync.add(topic, stamp_ns, (topic, stamp_ns))
    return out, sync


A, B, C = 0, 1, 2


def test_issue_case_upstream_emits_a0_b1916_c1405():
    out, _ = run([(A, 0), (C, 14_050_000), (C, 20_490_000), (B, 19_160_000)])
    assert out == [((A, 0), (B, 19_160_000), (C, 14_050_000))]


def test_issue_case_closest_partner_c0_not_c1804():
    out, _ = run([(C, 0), (A, 11_190_000), (C, 18_040_000), (B, 2_830_000)])
    assert out == [((A, 11_190_000), (B, 2_830_000), (C, 0))]


def test_spread_equal_to_slop_is_not_a_set():
    out, _ = run([(A, 0), (B, 20 * MS)], n=2)
    assert out == []
    out, _ = run([(A, 0), (B, 20 * MS - 1)], n=2)
    assert len(out) == 1


def test_out_of_order_within_a_topic_still_matches():
    # A arrives 30 ms, then 0 ms (late); B at 1 ms matches the late A0
    out, sync = run([(A, 30 * MS), (A, 0), (B, 1 * MS)], n=2)
    assert out == [((A, 0), (B, 1 * MS))]
    assert sync.queued() == [1, 0]  # A30 waits for its partner
    sync.add(B, 31 * MS, "b31")
    assert sync.matched == 2


def test_only_the_arriving_message_completes_a_set():
    # B's 5 ms message sits in its queue; C arrives first, then the set completes with A
    out, _ = run([(B, 5 * MS), (C, 6 * MS), (A, 4 * MS)])
    assert out == [((A, 4 * MS), (B, 5 * MS), (C, 6 * MS))]


def test_queue_size_evicts_the_oldest_stamp_even_the_new_one():
    out, sync = run([(A, 10 * MS), (A, 20 * MS), (A, 5 * MS)], n=2, queue=2)
    assert sync.dropped == 1 and sync.queued() == [2, 0]  # A5 arrived oldest in a full queue: gone at once
    sync.add(B, 4 * MS, "b4")  # would have paired with A5 (1 ms); pairs with A10 instead
    assert out == [((A, 10 * MS), "b4")]


def test_same_stamp_replaces_and_is_counted():
    out, sync = run([(A, 0), (A, 0), (B, 0)], n=2)
    assert len(out) == 1 and sync.replaced == 1


def test_reset_after_a_jump_keeps_partners_of_the_new_run():
    out, sync = run([(A, 100 * MS), (A, 200 * MS), (B, 1 * MS)], n=2, queue=5)  # B1: new run, first
    assert sync.reset(newer_than_ns=50 * MS) == 2 and sync.queued() == [0, 1]
    sync.add(A, 0, "a0")
    assert out == [("a0", (B, 1 * MS))]


def test_reset_empties_queues_for_a_jump_back():
    out, sync = run([(A, 100 * MS), (A, 200 * MS)], n=2, queue=2)
    assert sync.reset() == 2 and sync.queued() == [0, 0]
    sync.add(B, 1 * MS, "b")
    sync.add(A, 0, "a")
    assert sync.matched == 1


@pytest.mark.parametrize("bad", [dict(n=1), dict(queue_size=0), dict(slop=-1.0), dict(slop=0.0),
                                 dict(slop=float("nan"))])
def test_bad_arguments_refused(bad):
    kw = dict(n=2, queue_size=5, slop=0.01) | bad
    with pytest.raises(ValueError):
        ApproximateTimeSync(kw["n"], kw["queue_size"], kw["slop"], lambda *m: None)


class BruteForceReference:
    """The upstream rule restated without its loop structure.

    Per topic a list of [stamp, msg] in insertion order. On arrival: store (same stamp replaces in place),
    evict the smallest stamps beyond queue_size. Then among ALL combinations of queued messages of the
    other topics, keep those each within slop of the arrival whose spread with it is < slop; emit the
    one that is lexicographically smallest in (|dt| to the arrival, insertion position) per topic, topics
    in index order (what itertools.product over |dt|-sorted candidate lists visits first).
    """

    def __init__(self, n, queue_size, slop_ns):
        self.q = [[] for _ in range(n)]
        self.size, self.slop = queue_size, slop_ns
        self.out = []

    def add(self, topic, stamp, msg):
        q = self.q[topic]
        for entry in q:
            if entry[0] == stamp:
                entry[1] = msg
                break
        else:
            q.append([stamp, msg])
        while len(q) > self.size:
            q.remove(min(q, key=lambda e: e[0]))
        if not any(e[0] == stamp for e in q):
            return
        others = [i for i in range(len(self.q)) if i != topic]
        best, best_key = None, None
        for combo in itertools.product(*[list(enumerate(self.q[i])) for i in others]):
            stamps = [e[0] for _, e in combo] + [stamp]
            if any(abs(s - stamp) > self.slop for s in stamps):
                continue
            if not max(stamps) - min(stamps) < self.slop:
                continue
            key = tuple((abs(e[0] - stamp), pos) for pos, e in combo)
            if best_key is None or key < best_key:
                best, best_key = combo, key
        if best is None:
            return
        picked = dict(zip(others, [e for _, e in best], strict=True))
        picked[topic] = next(e for e in q if e[0] == stamp)
        self.out.append(tuple(picked[i][1] for i in range(len(self.q))))
        for i, e in picked.items():
            self.q[i].remove(e)


def random_stream_outputs(seed):
    rng = random.Random(seed)
    n = rng.choice([2, 3, 4])
    queue = rng.choice([1, 2, 3, 5, 10])
    slop_ns = rng.choice([5, 20, 50]) * MS
    arrivals = []
    for k in range(60):  # a camera at ~30 Hz per topic, jittered stamps, jittered and reordered arrival
        for t in range(n):
            if rng.random() < 0.85:
                stamp = k * 33 * MS + rng.randint(-15, 15) * MS + rng.choice([0, 0, 0, 1])
                arrivals.append((k * 33 * MS + rng.randint(0, 60) * MS, t, max(stamp, 0)))
    arrivals.sort()
    sync_out = []
    sync = ApproximateTimeSync(n, queue, slop_ns / 1e9, lambda *m: sync_out.append(m))
    ref = BruteForceReference(n, queue, slop_ns)
    for j, (_, t, stamp) in enumerate(arrivals):
        msg = (t, stamp, j)
        sync.add(t, stamp, msg)
        ref.add(t, stamp, msg)
    return sync_out, ref.out, sync


def test_random_streams_match_the_reference():
    matched = dropped = 0
    for seed in range(60):
        ours, reference, sync = random_stream_outputs(seed)
        assert ours == reference, f"seed {seed}"
        matched, dropped = matched + sync.matched, dropped + sync.dropped
    assert matched > 1000 and dropped > 100  # the streams exercise both emission and eviction
