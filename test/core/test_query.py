"""Queries on a hand-made map: cosine / relative scores, top-k, 26-connected candidates, aligned cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radseg_core.query import (
    AlignedFeatures,
    ClassLabels,
    align_and_normalize,
    candidate_groups,
    connected_components,
    cosine_scores,
    group_candidates,
    map_cosines,
    query_map,
    relative_scores,
    top_k,
)
from radseg_core.voxel_map import VoxelMap

VS = 0.1


def hand_map() -> VoxelMap:
    """Chair-like feature e0 in two separate blobs, table feature e1 in one blob, wall feature e2."""
    vm = VoxelMap(voxel_size=VS, dim=4, dtype=torch.float32)
    blobs = {
        0: [(0, 0, 0), (1, 0, 0), (1, 1, 1)],  # diagonal (1,0,0)-(1,1,1) joins only under 26-connectivity
        1: [(5, 5, 5), (5, 6, 5)],
        2: [(0, 9, 0), (1, 9, 0), (2, 9, 0), (3, 9, 0)],
    }
    far_chair = [(9, 0, 0), (9, 0, 1)]
    pts, vals = [], []
    for dim, cells in list(blobs.items()) + [(0, far_chair)]:
        for c in cells:
            pts.append((np.array(c) + 0.5) * VS)
            v = np.zeros(4, np.float32)
            v[dim] = 1.0
            v[3] = 0.2  # a shared component, so cosines are not just 0/1
            vals.append(v)
    vm.integrate_points(torch.tensor(np.array(pts), dtype=torch.float32), torch.tensor(np.array(vals)))
    return vm


def test_cosine_and_relative_scores_math():
    feats = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), dim=1)
    cos = cosine_scores(feats, torch.tensor([[2.0, 0.0]]))
    torch.testing.assert_close(cos, torch.tensor([[1.0, 2**-0.5, 0.0]]))
    neg = cosine_scores(feats, torch.tensor([[0.0, 1.0]]))
    rel = relative_scores(cos, neg, temperature=100.0)
    expected = torch.softmax(100 * torch.cat([cos, neg]), dim=0)[0]
    torch.testing.assert_close(rel[0], expected)
    assert rel[0, 0] > 0.99 and abs(rel[0, 1] - 0.5) < 1e-6 and rel[0, 2] < 0.01
    q2 = torch.rand(2, 5)
    n3 = torch.rand(3, 5)
    for q in range(2):  # several queries each against the same negatives, not against each other
        ref = torch.softmax(50 * torch.cat([q2[q : q + 1], n3]), dim=0)[0]
        torch.testing.assert_close(relative_scores(q2, n3, temperature=50)[q], ref)
    torch.testing.assert_close(relative_scores(cos), cos)  # single query, no negatives: raw cosine
    two = torch.cat([cos, neg])
    torch.testing.assert_close(relative_scores(two), torch.softmax(100 * two, dim=0))


def test_top_k_order_and_bounds():
    s = torch.tensor([0.1, 0.9, 0.5, 0.9])
    assert top_k(s, 3).tolist() == [1, 3, 2]
    assert top_k(s, 10).numel() == 4 and top_k(s, 0).numel() == 0


def brute_force_components(ijk: np.ndarray) -> list[set[int]]:
    n = len(ijk)
    seen, comps = set(), []
    for s in range(n):
        if s in seen:
            continue
        comp, stack = {s}, [s]
        seen.add(s)
        while stack:
            i = stack.pop()
            for j in range(n):
                if j not in seen and np.abs(ijk[i] - ijk[j]).max() <= 1:
                    seen.add(j)
                    comp.add(j)
                    stack.append(j)
        comps.append(comp)
    return comps


def test_connected_components_match_brute_force():
    rng = np.random.default_rng(0)
    ijk = np.unique(rng.integers(0, 8, (120, 3)), axis=0)
    labels = connected_components(torch.from_numpy(ijk)).numpy()
    got = {frozenset(np.nonzero(labels == c)[0].tolist()) for c in np.unique(labels)}
    assert got == {frozenset(c) for c in brute_force_components(ijk)}
    # a long snake needs many propagation rounds
    snake = torch.stack([torch.arange(200), torch.zeros(200, dtype=torch.long), torch.zeros(200, dtype=torch.long)], 1)
    assert connected_components(snake[torch.randperm(200)]).unique().tolist() == [0]


def test_group_candidates_centroid_extent_score():
    ijk = torch.tensor([[0, 0, 0], [1, 1, 1], [5, 5, 5], [9, 9, 9]])
    scores = torch.tensor([0.9, 0.7, 0.8, 0.1])
    cands = group_candidates(ijk, scores, threshold=0.5, voxel_size=1.0, query_index=2)
    assert [c.voxels for c in cands] == [2, 1]
    np.testing.assert_allclose(cands[0].centroid, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(cands[0].extent, [2.0, 2.0, 2.0])
    assert cands[0].score == pytest.approx(0.9) and cands[0].query_index == 2
    np.testing.assert_allclose(cands[1].centroid, [5.5, 5.5, 5.5])
    assert group_candidates(ijk, scores, threshold=0.5, voxel_size=1.0, min_voxels=2)[0].voxels == 2
    assert group_candidates(ijk, scores, threshold=0.95, voxel_size=1.0) == []


def test_candidate_groups_members_are_the_groups_voxels():
    ijk = torch.tensor([[0, 0, 0], [9, 9, 9], [1, 1, 1], [5, 5, 5], [2, 2, 2]])
    scores = torch.tensor([0.9, 0.1, 0.7, 0.8, 0.6])
    groups = candidate_groups(ijk, scores, threshold=0.5, voxel_size=1.0)
    assert [members.tolist() for _, members in groups] == [[0, 2, 4], [3]]
    summaries = group_candidates(ijk, scores, threshold=0.5, voxel_size=1.0)
    assert [(c.voxels, c.score) for c, _ in groups] == [(c.voxels, c.score) for c in summaries]


def test_round_grid_candidates_are_centred_on_their_voxels():
    """A ``round`` lattice centres voxel i on i * s: candidate centroids must say so (they were s/2 off)."""
    vm = VoxelMap(voxel_size=1.0, mode="probabilities", dim=2, dtype=torch.float32, grid="round")
    vm.metadata["classes"] = ["a", "b"]
    vm.integrate_points(torch.tensor([[2.1, -0.9, 0.2]]), torch.tensor([[0.9, 0.1]]))
    res = query_map(vm, ["a"], threshold=0.5)
    np.testing.assert_allclose(res.candidates[0].centroid, vm.centers(torch.float64)[0].numpy())
    np.testing.assert_allclose(res.candidates[0].centroid, [2.0, -1.0, 0.0])


def test_query_map_features_mode_with_negatives():
    vm = hand_map()
    chair, table, wall = torch.eye(4)[:3].split(1)
    res = query_map(vm, ["chair"], chair, negatives=torch.cat([table, wall]), k=5, threshold=0.5)
    assert res.scores.shape == (1, len(vm)) and res.positions.shape == (len(vm), 3)
    ijk = [tuple(x) for x in vm.voxel_indices().tolist()]
    chair_top = {ijk[i] for i in res.top_indices[0][:5]}
    assert chair_top == {(0, 0, 0), (1, 0, 0), (1, 1, 1), (9, 0, 0), (9, 0, 1)}
    assert sorted(c.voxels for c in res.candidates) == [2, 3]  # two separate chairs, the diagonal one joined
    assert res.candidates[0].score > 0.99
    res = query_map(vm, ["table"], table, negatives=torch.cat([chair, wall]), threshold=0.5)
    assert len(res.candidates) == 1 and res.candidates[0].voxels == 2
    np.testing.assert_allclose(res.candidates[0].centroid, [0.55, 0.6, 0.55], atol=1e-6)
    np.testing.assert_allclose(res.candidates[0].extent, [0.1, 0.2, 0.1], atol=1e-6)
    # Without negatives the table voxels' small cosine with "chair" is not suppressed: raw cosine < 0.5.
    raw = query_map(vm, ["chair"], chair, threshold=0.5)
    assert sorted(c.voxels for c in raw.candidates) == [2, 3]


def test_query_map_uses_align_callable():
    vm = hand_map()
    perm = torch.tensor([1, 0, 2, 3])  # "align" swaps the first two feature dims

    def align(x):
        return x[:, perm]

    res = query_map(vm, ["chair"], torch.eye(4)[:1], align=align, negatives=torch.eye(4)[1:3], k=2)
    ijk = {tuple(vm.voxel_indices()[i].tolist()) for i in res.top_indices[0]}
    assert ijk == {(5, 5, 5), (5, 6, 5)}  # the table voxels now answer "chair"
    with pytest.raises(ValueError, match="text dim"):
        query_map(vm, ["chair"], torch.ones(1, 7))


def test_aligned_cache_incremental_equals_full_recompute():
    torch.manual_seed(0)
    W = torch.randn(6, 5)

    def align(x):
        return x @ W

    calls = []

    def counting_align(x):
        calls.append(x.shape[0])
        return align(x)

    vm = VoxelMap(voxel_size=0.1, dim=6, dtype=torch.float16)
    cache = AlignedFeatures(counting_align, dtype=torch.float32)
    vm.integrate_points(torch.rand(500, 3), torch.randn(500, 6))
    cache.update(vm)
    n0 = len(vm)
    vm.integrate_points(torch.rand(5, 3) + 0.3, torch.randn(5, 6))  # touches a few voxels, maybe new ones
    calls.clear()
    feats = cache.update(vm)
    assert sum(calls) <= 5 + (len(vm) - n0)  # only touched + new voxels re-aligned
    torch.testing.assert_close(feats, align_and_normalize(vm.values(), align))
    removed = vm.clear_region([0, 0, 0], [0.5, 0.5, 0.5])  # removal compacts slots
    assert removed > 0
    calls.clear()
    torch.testing.assert_close(cache.update(vm), align_and_normalize(vm.values(), align))
    assert sum(calls) == 0  # survivors found again by key: nothing re-aligned (the head is an MLP)
    vm.integrate_points(torch.rand(5, 3) + 0.3, torch.randn(5, 6))  # update + removal in one refresh
    vm.clear_region([0.9, 0.9, 0.9], [1.0, 1.0, 1.0])
    calls.clear()
    torch.testing.assert_close(cache.update(vm), align_and_normalize(vm.values(), align))
    assert 0 < sum(calls) <= 5
    vm.reset()
    vm.integrate_points(torch.rand(50, 3), torch.randn(50, 6))  # same keys possible, new contents
    torch.testing.assert_close(cache.update(vm), align_and_normalize(vm.values(), align))
    other = VoxelMap(voxel_size=0.1, dim=6, dtype=torch.float16)  # a different map: no stale reuse
    other._restore(vm.keys(), torch.randn(len(vm), 6).half(), vm.color_means(), vm.hits(), vm.last_seen(),
                   vm.frames_integrated)
    torch.testing.assert_close(cache.update(other), align_and_normalize(other.values(), align))
    text = torch.randn(2, 5)
    a = query_map(vm, ["a", "b"], text, cache=cache)
    b = query_map(vm, ["a", "b"], text, align=align)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_class_labels_refresh_only_changed_voxels_and_equal_a_full_computation():
    gen = torch.Generator().manual_seed(5)
    W = torch.randn(6, 5, generator=gen)
    calls = []

    def align(x):
        calls.append(x.shape[0])
        return x @ W

    def full(vm, text):
        cos = align_and_normalize(vm.values(), lambda x: x @ W) @ F.normalize(text, dim=1).T
        score, best = torch.softmax(100.0 * cos, dim=1).max(dim=1)
        return best, score

    vm = VoxelMap(voxel_size=0.1, dim=6, dtype=torch.float16)
    labels = ClassLabels(align)
    text = torch.randn(3, 5, generator=gen)
    labels.set_text(text)
    vm.integrate_points(torch.rand(800, 3, generator=gen), torch.randn(800, 6, generator=gen))
    for step in range(3):
        rows = labels.update(vm)
        best, score = full(vm, text)
        assert torch.equal(rows[:, 0].long(), best)
        torch.testing.assert_close(rows[:, 1].float(), score, atol=1e-3, rtol=0)
        calls.clear()
        vm.integrate_points(torch.rand(4, 3, generator=gen) + 0.3, torch.randn(4, 6, generator=gen))
        if step == 1:
            vm.clear_region([0, 0, 0], [0.4, 0.4, 0.4])  # removals: survivors found by key
        labels.update(vm)
        assert 0 < sum(calls) <= 4
    calls.clear()
    labels.set_text(text.clone())  # same classes: nothing recomputed
    labels.update(vm)
    assert sum(calls) == 0
    labels.set_text(torch.randn(2, 5, generator=gen))  # new classes: everything recomputed
    labels.update(vm)
    assert sum(calls) == len(vm)


def test_map_cosines_chunk_by_chunk_equal_the_aligned_copy(monkeypatch):
    """Without the cache a query aligns the map block by block (never a full aligned copy): same scores,
    also across many storage chunks."""
    import functools

    import radseg_core.voxel_map.map as voxel_map_module
    from radseg_core.voxel_map.slot_store import SlotStore

    monkeypatch.setattr(voxel_map_module, "SlotStore", functools.partial(SlotStore, min_rows=8, max_chunks=4))
    gen = torch.Generator().manual_seed(6)
    W = torch.randn(6, 5, generator=gen)
    vm = VoxelMap(voxel_size=0.1, dim=6, dtype=torch.float16)
    vm.integrate_points(torch.rand(600, 3, generator=gen), torch.randn(600, 6, generator=gen))
    assert len(vm.value_blocks()) >= 3
    text = torch.randn(3, 5, generator=gen)
    expect = cosine_scores(align_and_normalize(vm.values(), lambda x: x @ W), text)
    got = map_cosines(vm, text, lambda x: x @ W, chunk=7)
    torch.testing.assert_close(got, expect)
    with pytest.raises(ValueError, match="text dim"):
        map_cosines(vm, torch.randn(1, 4), lambda x: x @ W)


def test_query_map_probabilities_mode():
    vm = VoxelMap(voxel_size=1.0, mode="probabilities", dim=3, dtype=torch.float32)
    vm.metadata["classes"] = ["ignore", "chair", "table"]
    vm.integrate_points(
        torch.tensor([[0.5, 0.5, 0.5], [3.5, 0.5, 0.5]]), torch.tensor([[0.1, 0.8, 0.1], [0.0, 0.3, 0.7]])
    )
    res = query_map(vm, ["table"], threshold=0.5)
    np.testing.assert_allclose(res.scores, [[0.1, 0.7]])
    assert len(res.candidates) == 1 and res.candidates[0].voxels == 1
    with pytest.raises(ValueError, match="not classes"):
        query_map(vm, ["sofa"])


def test_query_empty_map():
    vm = VoxelMap(dim=4)
    res = query_map(vm, ["x"], torch.ones(1, 4))
    assert res.scores.shape == (1, 0) and res.candidates == []


def test_fp16_cosine_close_to_fp32():
    torch.manual_seed(1)
    feats = torch.nn.functional.normalize(torch.randn(3000, 64), dim=1)
    text = torch.randn(3, 64)
    ref = cosine_scores(feats, text)
    half = cosine_scores(feats.half(), text)
    assert half.dtype == torch.float32
    assert (half - ref).abs().max() < 2e-3
