"""Open-vocabulary queries over a VoxelMap: cosine scores, relative (softmax) scores, top-k, candidates.

Scores follow RADSeg / RayFronts: ``softmax(100 · cos)`` over the query and a set of other labels
(negatives such as "wall", "floor", "object", or all class names), keeping the query's column. A raw
cosine is not comparable across queries or scenes; the relative score is.

In features mode the map stores raw RADIO features; the injected ``align`` callable (the SigLIP2
adaptor head) maps them into the text space. :class:`AlignedFeatures` keeps an aligned, normalised
copy up to date incrementally (only voxels touched since the last query are re-aligned), so a query
is one matrix product over the map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from radseg_core.types import Candidate, QueryResult
from radseg_core.voxel_map import VoxelMap, pack_keys

AlignFn = Callable[[torch.Tensor], torch.Tensor]
_CHUNK = 1 << 16
MAX_QUERIES = 64  # texts one query may carry (node parameter max_queries, the browser view's query box)
MAX_QUERY_CHARS = 1000  # characters one text may have (node parameter max_query_chars)

# The 13 "forward" offsets of the 26-neighbourhood; each edge is found once and used both ways.
_OFFSETS = torch.tensor(
    [(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1) if (dx, dy, dz) > (0, 0, 0)]
)


def align_and_normalize(
    features: torch.Tensor,
    align: AlignFn | None = None,
    chunk: int = _CHUNK,
    out_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(N, D) map features → (N, D') unit vectors in text space, in chunks to bound temporary memory."""
    out = []
    with torch.no_grad():
        for part in features.split(chunk):
            x = part.float()
            if align is not None:
                x = align(x).float()
            out.append(F.normalize(x, dim=1).to(out_dtype))
    return torch.cat(out)


def _parts(values: torch.Tensor | Sequence[torch.Tensor], chunk: int) -> Iterator[torch.Tensor]:
    """Rows of a tensor or of a map's value blocks, ``chunk`` rows at a time (bounded temporaries)."""
    for block in [values] if isinstance(values, torch.Tensor) else values:
        yield from block.split(chunk)


def map_cosines(
    vmap: VoxelMap,
    text: torch.Tensor,
    align: AlignFn | None = None,
    cache: AlignedFeatures | None = None,
    chunk: int = _CHUNK,
) -> torch.Tensor:
    """(Q, N) cosine of every voxel's language-aligned feature with each row of ``text`` (Q, D').

    From the aligned cache when there is one; otherwise the map is aligned chunk by chunk and only the
    (Q, N) scores are kept, so a query never holds an aligned copy of the map (2·D' bytes per voxel).
    """
    if cache is not None:
        feats = cache.update(vmap)
        if feats.shape[0]:
            _check_text_dim(feats.shape[1], text.shape[1])
        return cosine_scores(feats, text)
    t = F.normalize(text.float(), dim=1).to(vmap.device)
    parts = []
    for part in _parts(vmap.value_blocks(), chunk):
        feats = align_and_normalize(part, align, chunk)
        _check_text_dim(feats.shape[1], t.shape[1])
        parts.append(cosine_scores(feats, t))
    return torch.cat(parts, dim=1) if parts else t.new_zeros(t.shape[0], 0)


def _check_text_dim(map_dim: int, text_dim: int) -> None:
    if map_dim != text_dim:
        raise ValueError(f"text dim {text_dim} != aligned map dim {map_dim}; pass the right align callable")


def cosine_scores(features_n: torch.Tensor, text: torch.Tensor, chunk: int = 1 << 18) -> torch.Tensor:
    """(Q, N) float32 cosine of unit map features (N, D) with text embeddings (Q, D) (normalised here).

    Half-precision features are multiplied in their own dtype (fp32 accumulation inside the kernel):
    converting the map to fp32 first costs ~10x more on CPU for a cosine error of ~1e-4.
    """
    t = F.normalize(text.float(), dim=1).to(features_n.device)
    if features_n.shape[0] == 0:
        return t.new_zeros(t.shape[0], 0)
    tt = t.to(features_n.dtype)
    return torch.cat([(tt @ part.T).float() for part in features_n.split(chunk)], dim=1)


def relative_scores(
    cos_queries: torch.Tensor, cos_negatives: torch.Tensor | None = None, temperature: float = 100.0
) -> torch.Tensor:
    """Softmax(temperature · cos) of each query against the negatives; returns the query's column (Q, N).

    Without negatives, several queries compete with each other (class-set style); a single query
    with no negatives has nothing to compete with, so its raw cosine is returned.
    """
    if cos_negatives is None or cos_negatives.shape[0] == 0:
        if cos_queries.shape[0] == 1:
            return cos_queries.clone()
        return torch.softmax(temperature * cos_queries, dim=0)
    # softmax([q, n_1..n_M])[0] = sigmoid(q - logsumexp(n)): one pass for all queries, numerically stable
    return torch.sigmoid(temperature * cos_queries - torch.logsumexp(temperature * cos_negatives, dim=0))


def check_queries(queries: Sequence[str], max_queries: int = MAX_QUERIES,
                  max_chars: int = MAX_QUERY_CHARS) -> str | None:
    """Why a list of query texts is refused (no text, too many, an empty or too long one), or None.

    The one check behind every way a person asks (the node's ``~/query``, the browser view's box), so
    each answers the same input with the same words.
    """
    if not queries:
        return "no queries: give at least one text, e.g. queries: ['chair']"
    if len(queries) > max_queries:
        return f"{len(queries)} queries exceed max_queries={max_queries}"
    for i, q in enumerate(queries):
        if not q.strip():
            return f"query {i} is empty"
        if len(q) > max_chars:
            return f"query {i} has {len(q)} characters, more than max_query_chars={max_chars}"
    return None


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k best scores, best first (ties broken by lower index)."""
    k = min(int(k), scores.numel())
    if k <= 0:
        return torch.empty(0, dtype=torch.int64)
    order = torch.argsort(-scores, stable=True)
    return order[:k]


def connected_components(ijk: torch.Tensor) -> torch.Tensor:
    """Component label (N,) of voxels (N, 3 int) under 26-connectivity; labels are 0..C-1 by first voxel."""
    n = ijk.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.int64)
    ijk = ijk - ijk.min(dim=0).values + 1  # local coordinates: packing stays collision-free far from 0
    keys = pack_keys(ijk)
    skeys, perm = torch.sort(keys)
    src_l, dst_l = [], []
    for off in _OFFSETS.to(ijk.device):
        nk = pack_keys(ijk + off)
        pos = torch.searchsorted(skeys, nk).clamp_max(n - 1)
        hit = skeys[pos] == nk
        src_l.append(torch.nonzero(hit, as_tuple=True)[0])
        dst_l.append(perm[pos[hit]])
    src, dst = torch.cat(src_l), torch.cat(dst_l)
    label = torch.arange(n, device=ijk.device)
    while True:  # min-label propagation with pointer jumping: O(log diameter)-ish rounds
        new = label.clone()
        new.scatter_reduce_(0, src, label[dst], reduce="amin")
        new.scatter_reduce_(0, dst, label[src], reduce="amin")
        new = new[new]
        if torch.equal(new, label):
            break
        label = new
    _, compact = torch.unique(label, return_inverse=True)
    return compact


def group_candidates(
    ijk: torch.Tensor,
    scores: torch.Tensor,
    *,
    threshold: float,
    voxel_size: float,
    query_index: int = 0,
    min_voxels: int = 1,
    max_candidates: int | None = None,
    grid_shift: float = 0.0,
) -> list[Candidate]:
    """Connected groups (26-neighbourhood) of voxels scoring ≥ threshold, best group first.

    Centroid is the mean voxel centre, extent the axis-aligned size of the group's voxels, score the
    best voxel score in the group: what a planner needs to go and look. ``grid_shift`` is the lattice's
    offset (0.5 for a ``round`` grid, whose voxel i is centred on i · voxel_size).
    """
    return [cand for cand, _ in candidate_groups(
        ijk, scores, threshold=threshold, voxel_size=voxel_size, query_index=query_index,
        min_voxels=min_voxels, max_candidates=max_candidates, grid_shift=grid_shift)]


def candidate_groups(
    ijk: torch.Tensor,
    scores: torch.Tensor,
    *,
    threshold: float,
    voxel_size: float,
    query_index: int = 0,
    min_voxels: int = 1,
    max_candidates: int | None = None,
    grid_shift: float = 0.0,
) -> list[tuple[Candidate, torch.Tensor]]:
    """:func:`group_candidates` with each group's members: indices into ``ijk`` (int64, ascending).

    Navigation needs the voxels themselves (a goal keeps its distance from the nearest one), not only
    the summary.
    """
    sel = torch.nonzero(scores >= threshold, as_tuple=True)[0]
    if sel.numel() == 0:
        return []
    comp = connected_components(ijk[sel])
    n_comp = int(comp.max()) + 1
    centres = (ijk[sel].double() + (0.5 - grid_shift)) * voxel_size
    s = scores[sel].double()
    counts = torch.bincount(comp, minlength=n_comp)
    centroid = torch.zeros(n_comp, 3, dtype=torch.float64).index_add_(0, comp, centres) / counts[:, None]
    idx3 = comp[:, None].expand(-1, 3)
    lo = torch.full((n_comp, 3), torch.inf, dtype=torch.float64).scatter_reduce_(0, idx3, centres, "amin")
    hi = torch.full((n_comp, 3), -torch.inf, dtype=torch.float64).scatter_reduce_(0, idx3, centres, "amax")
    best = torch.full((n_comp,), -torch.inf, dtype=torch.float64).scatter_reduce_(0, comp, s, "amax")
    keep = torch.nonzero(counts >= min_voxels, as_tuple=True)[0].tolist()
    keep.sort(key=lambda c: (-float(best[c]), -int(counts[c])))
    if max_candidates is not None:
        keep = keep[:max_candidates]
    order = torch.argsort(comp, stable=True)  # members of each group, ascending within the group
    starts = torch.cumsum(counts, 0) - counts
    return [
        (
            Candidate(
                query_index=query_index,
                centroid=centroid[c].numpy(),
                extent=(hi[c] - lo[c] + voxel_size).numpy(),
                score=float(best[c]),
                voxels=int(counts[c]),
            ),
            sel[order[int(starts[c]) : int(starts[c] + counts[c])]],
        )
        for c in keep
    ]


class VoxelCache:
    """Per-voxel results of a function of the voxel features, refreshed only where the map changed.

    Voxels carry the frame clock of their last update (``VoxelMap.last_seen``); rows newer than the
    previous refresh are recomputed, new voxels appended. When voxels were removed (free-space clearing,
    eviction: ``generation`` changes, ``lineage`` does not) the surviving rows are found again by voxel
    key, so a removal costs a sort of the keys, not a recomputation over the map (the language head is
    an MLP 768->1536->1152: ~10 s per 100k voxels on one CPU thread). Reset and load (a new ``lineage``)
    recompute everything. Costs N · (row bytes + 8) bytes (results + keys) next to the map.
    """

    def __init__(self, align: AlignFn | None = None, chunk: int = _CHUNK) -> None:
        self.align = align
        self.chunk = chunk
        self._feats: torch.Tensor | None = None
        self._keys: torch.Tensor | None = None
        self._generation: int | None = None
        self._lineage: int | None = None
        self._clock = -1
        self.realigned = 0  # voxels recomputed by the last update (tests, diagnostics)

    def _compute(self, part: torch.Tensor) -> torch.Tensor:
        """Rows of the cache for (n, D) stored features."""
        raise NotImplementedError

    def _align(self, values: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            out = [self._compute(part) for part in _parts(values, self.chunk)]
        self.realigned += sum(o.shape[0] for o in out)
        return torch.cat(out) if out else torch.empty(0, 0)

    def invalidate(self) -> None:
        """Recompute everything on the next update (e.g. the function itself changed)."""
        self._feats = None

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self._feats, self._keys) if t is not None)

    def update(self, vmap: VoxelMap) -> torch.Tensor:
        """Bring the cache up to date with ``vmap`` and return it (N, ...)."""
        self.realigned = 0
        keys = vmap.keys()
        if self._feats is None or vmap.lineage != self._lineage or self._feats.shape[0] == 0:
            self._feats = self._align(vmap.value_blocks())
        elif vmap.generation != self._generation:
            self._feats = self._rematch(vmap, keys)
        else:
            n_old = self._feats.shape[0]
            if len(vmap) > n_old:
                self._feats = torch.cat([self._feats, self._align(vmap.value_blocks(n_old))])
            stale = torch.nonzero(vmap.last_seen()[:n_old] > self._clock, as_tuple=True)[0]
            if stale.numel():
                self._feats[stale] = self._align(vmap.gather_values(stale))
        self._keys = keys
        self._generation, self._lineage = vmap.generation, vmap.lineage
        self._clock = vmap.frames_integrated
        return self._feats

    def _rematch(self, vmap: VoxelMap, keys: torch.Tensor) -> torch.Tensor:
        """Rows of surviving voxels by key; new or updated voxels recomputed."""
        feats = torch.empty((keys.shape[0], *self._feats.shape[1:]), dtype=self._feats.dtype,
                            device=self._feats.device)
        todo = vmap.last_seen() > self._clock
        if self._keys is not None and self._keys.numel() and keys.numel():
            cached, order = torch.sort(self._keys)
            pos = torch.searchsorted(cached, keys).clamp_max(cached.numel() - 1)
            found = cached[pos] == keys
            feats[found] = self._feats[order[pos[found]]]
            todo |= ~found
        else:
            todo[:] = True
        idx = torch.nonzero(todo, as_tuple=True)[0]
        if idx.numel():
            feats[idx] = self._align(vmap.gather_values(idx))
        return feats


class AlignedFeatures(VoxelCache):
    """Aligned, unit-normalised copy of a features-mode map (opt-in: 2·D' + 8 bytes per voxel, i.e.
    2,312 B for SigLIP2's 1152-d, more than the map itself); a query is then one matrix product."""

    def __init__(self, align: AlignFn | None = None, dtype: torch.dtype = torch.float16) -> None:
        super().__init__(align)
        self.dtype = dtype

    def _compute(self, part: torch.Tensor) -> torch.Tensor:
        return align_and_normalize(part, self.align, self.chunk, out_dtype=self.dtype)


class ClassLabels(VoxelCache):
    """Best class and its softmax(100·cos) score per voxel, for cloud colouring: (N, 2) fp16 + keys =
    12 bytes per voxel. Only voxels changed since the last use are re-aligned, so publishing the semantic
    cloud does not pass the whole map through the language head every time."""

    def __init__(self, align: AlignFn | None = None) -> None:
        super().__init__(align)
        self._text: torch.Tensor | None = None

    def set_text(self, text: torch.Tensor) -> None:
        """Class embeddings (K, D'); a change (new classes) recomputes every voxel on the next update."""
        t = F.normalize(text.detach().float(), dim=1)
        if self._text is None or self._text.shape != t.shape or not torch.equal(self._text, t):
            self._text = t
            self.invalidate()

    def _compute(self, part: torch.Tensor) -> torch.Tensor:
        if self._text is None:
            raise RuntimeError("ClassLabels needs set_text() before update()")
        feats = align_and_normalize(part, self.align, self.chunk)
        _check_text_dim(feats.shape[1], self._text.shape[1])
        score, best = torch.softmax(100.0 * feats @ self._text.to(feats.device).T, dim=1).max(dim=1)
        return torch.stack([best.float(), score], dim=1).to(torch.float16)  # class index exact below 2048


def query_map(
    vmap: VoxelMap,
    queries: Sequence[str],
    text_embeddings: torch.Tensor | None = None,
    *,
    align: AlignFn | None = None,
    negatives: torch.Tensor | None = None,
    temperature: float = 100.0,
    k: int = 10,
    threshold: float = 0.5,
    min_voxels: int = 1,
    max_candidates: int | None = 10,
    cache: AlignedFeatures | None = None,
) -> QueryResult:
    """Score every voxel for each query and group the best into candidates.

    Features mode: ``text_embeddings`` (Q, D') are the queries' embeddings, ``negatives`` (M, D')
    optional competing labels, ``align`` (or ``cache``) maps stored features to text space. Scores are
    :func:`relative_scores`. Probabilities mode: queries are class names from
    ``vmap.metadata["classes"]`` and the score is the voxel's mean class probability.
    """
    queries = list(queries)
    if vmap.mode == "probabilities":
        classes = list(vmap.metadata.get("classes") or [])
        missing = [q for q in queries if q not in classes]
        if missing:
            raise ValueError(f"queries {missing} are not classes of this map ({len(classes)} classes)")
        cols = torch.tensor([classes.index(q) for q in queries], dtype=torch.int64, device=vmap.device)
        scores = vmap.values().float()[:, cols].T.contiguous() if len(vmap) else torch.zeros(len(queries), 0)
    else:
        if text_embeddings is None or text_embeddings.shape[0] != len(queries):
            raise ValueError("features mode needs one text embedding per query")
        texts = text_embeddings if negatives is None else torch.cat([text_embeddings, negatives.to(text_embeddings)])
        cos = map_cosines(vmap, texts, align, cache)  # one pass over the map for queries and negatives
        q = text_embeddings.shape[0]
        scores = relative_scores(cos[:q], None if negatives is None else cos[q:], temperature)
    scores = scores.cpu()
    ijk = vmap.voxel_indices().cpu()
    tops, cands = [], []
    for q in range(len(queries)):
        tops.append(top_k(scores[q], k).numpy())
        cands += group_candidates(
            ijk,
            scores[q],
            threshold=threshold,
            voxel_size=vmap.voxel_size,
            query_index=q,
            min_voxels=min_voxels,
            max_candidates=max_candidates,
            grid_shift=0.5 if vmap.grid == "round" else 0.0,
        )
    return QueryResult(
        queries=queries,
        positions=vmap.centers().cpu().numpy(),
        scores=scores.numpy(),
        top_indices=tops,
        candidates=cands,
    )


__all__ = [
    "AlignedFeatures",
    "ClassLabels",
    "VoxelCache",
    "candidate_groups",
    "align_and_normalize",
    "check_queries",
    "connected_components",
    "map_cosines",
    "cosine_scores",
    "group_candidates",
    "query_map",
    "relative_scores",
    "top_k",
]
