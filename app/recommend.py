"""The request pipeline behind the routes: profile -> tier route -> strategy -> answer.

Routers stay thin; this module holds the order of things and the fallbacks, so a newcomer can
read one request from store read to response body here. Every failure below the request's
validation degrades to popularity and says so in `method_used`; nothing becomes a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from app.errors import CatalogStaleError, NoVersionError, field_error
from app.experiments import Variant
from app.health import StoreHealth
from app.metrics import ServiceMetrics
from app.retrieval.catalog import CatalogState, VersionCatalog
from app.retrieval.filters import CompiledFilter, FilterError, Filters, compile_filters
from app.retrieval.foldin import profile_interactions, solve_against
from app.retrieval.item_foldin import NewItemEvents, user_gram
from app.retrieval.routing import Capabilities, Method, Route, Thresholds, route
from app.retrieval.search import SearchParams
from app.schemas import CandidatesRequest, InteractionBatch
from app.settings import ServeSettings
from app.version_registry import VersionRegistry
from app.versions import ServingVersion
from feature_store.base import FeatureStore, LiveEvent, StoreUnavailableError, UserProfile
from feature_store.fusion import FusionParams, fuse
from feature_store.ranking_features import TIERS, UserSide, candidate_features, candidates
from feature_store.version_files import USER_FACTORS, load_array
from feature_store.version_paths import manifest_scope

log = logging.getLogger("recsys.recommend")

_FOLDIN_INLINE_WORK = 2_000_000  # rows x dim^2 below which a fold-in runs on the loop (~0.2 ms)
_NEW_ITEM_LOOKBACK_S = 3_600.0  # events this long before a new item's last write still count
_NEW_ITEM_READS = 5  # stream reads of 10,000 entries at most per poll of the new items


@dataclass
class Answer:
    body: dict[str, Any]
    fallback_reason: str | None = None


@dataclass
class UserVectors:
    """The query vectors of one request, computed only for what the chosen route needs."""

    als: np.ndarray | None = None
    two_tower: np.ndarray | None = None
    content: np.ndarray | None = None


Ranked = tuple[np.ndarray, np.ndarray, list[str] | str]  # rows, scores, source(s)


class Recommender:
    def __init__(
        self,
        settings: ServeSettings,
        store: FeatureStore,
        registry: VersionRegistry,
        metrics: ServiceMetrics,
        health: StoreHealth,
        recent_limit: int,
        executor: Executor | None = None,
    ) -> None:
        self.settings = settings
        self.executor = executor  # searches and fold-ins too long for the event loop
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.health = health
        self.recent_limit = recent_limit
        self.catalog = CatalogState()  # the items API's changes, synced per request (catalog.py)
        self.new_item_events = NewItemEvents()  # run-time events on new items (item_foldin.py)
        self.new_item_vectors: dict[str, dict[str, np.ndarray]] = {}  # version -> item -> ALS vector
        self._user_grams: dict[str, np.ndarray] = {}
        base = Thresholds(settings.warm_min_interactions, settings.hot_min_interactions)
        variants = registry.experiment.variants
        self._thresholds = {v.name: v.thresholds(base) for v in variants}
        self._params = {v.name: SearchParams(ef_search=v.ef_search or settings.ef_search) for v in variants}
        self._fusion_override = {
            v.name: (
                v.ensemble_weights or settings.ensemble_weights,
                v.ensemble_rrf_k or settings.ensemble_rrf_k,
            )
            for v in variants
        }

    # -- reading the user --------------------------------------------------------------------

    async def _profile(self, version: ServingVersion, user_id: str) -> UserProfile | None:
        try:
            async with asyncio.timeout(self.settings.store_timeout_s):
                profile = await self.store.get_profile(
                    version.name, user_id, self.recent_limit, version.live_view
                )
        except (StoreUnavailableError, TimeoutError) as exc:
            self.metrics.store_errors.labels("get_profile").inc()
            self.health.failed(str(exc) or "timed out")
            return None
        if self.health.pending:
            self.health.succeeded()
        return profile

    @staticmethod
    def _stored(profile: UserProfile, name: str, can_recompute: bool) -> tuple[np.ndarray | None, bool]:
        """The published embedding `name` and whether it is still current: it is until the user
        has events the training run did not see, unless nothing could recompute it anyway."""
        stored = profile.embeddings.get(name) if profile.known else None
        return stored, stored is not None and (profile.live == 0 or not can_recompute)

    def _history(self, profile: UserProfile) -> tuple[np.ndarray, np.ndarray]:
        """(rows, weights) of what the user did, as both fold-in and the user tower read it."""
        return profile_interactions(
            profile.seen, profile.recent_items, profile.recent_weights, self.settings.foldin_max_items
        )

    async def _als_vector(
        self,
        version: ServingVersion,
        profile: UserProfile,
        history: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray | None:
        """The stored vector while it is current; a fold-in once the user has events the
        training run did not see (or has no stored vector at all)."""
        stored, current = self._stored(profile, "als", version.foldin is not None)
        if current or version.foldin is None:
            return stored
        rows, weights = history or self._history(profile)
        if not len(rows) or not np.any(weights > 0):
            return stored
        foldin = version.foldin
        if len(rows) * version.als.dim**2 <= _FOLDIN_INLINE_WORK:
            return foldin.fold_in(rows, weights)
        return await asyncio.get_running_loop().run_in_executor(self.executor, foldin.fold_in, rows, weights)

    # -- POST /candidates ----------------------------------------------------------------------

    async def sync_catalog(self, generation: int | None) -> None:
        """Bring this worker's catalog up to `generation` (read with the profile). The store
        said the catalog changed, so answering from the one held could serve an item hidden a
        moment ago: the read is tried twice within its own budget, then CatalogStaleError (a
        503; the client's retry finds the store answering again, as the profile read just did)."""
        for attempt in (1, 2):
            try:
                await self.catalog.sync(self.store, generation, self.settings.catalog_timeout_s)
                return
            except (StoreUnavailableError, TimeoutError) as exc:
                self.metrics.store_errors.labels("catalog").inc()
                log.warning(
                    "catalog not refreshed (generation %s, try %d): %s",
                    generation,
                    attempt,
                    exc or "timed out",
                )
        raise CatalogStaleError("the item catalog changed and could not be read; retry")

    def catalog_view(self, version: ServingVersion) -> VersionCatalog:
        content = version.content.vectors if version.content is not None else None
        return self.catalog.view(
            version.name, version.item_rows, len(version.item_ids), version.content_encoder, content
        )

    def compile(self, filters: Filters | None, version: ServingVersion) -> CompiledFilter:
        """A request's filters under the run-time catalog; a 422 naming the field when they do
        not apply to the version."""
        try:
            return compile_filters(filters, version.attributes, version.item_rows, self.catalog_view(version))
        except FilterError as exc:
            raise field_error(("body", *exc.field.split(".")), str(exc).split(": ", 1)[-1]) from exc

    def _two_tower_vector(
        self,
        version: ServingVersion,
        profile: UserProfile,
        history: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray | None:
        """The published embedding while it is current; the user tower over the store's history
        once the user has events the training run did not see (or was never published)."""
        stored, current = self._stored(profile, "two_tower", version.user_tower is not None)
        if current or version.user_tower is None:
            return stored
        rows, weights = history or self._history(profile)
        encoded = version.user_tower.encode(rows, weights)
        return encoded if encoded is not None else stored

    def _content_query(self, version: ServingVersion, profile: UserProfile) -> np.ndarray | None:
        """The event-weighted mean of the content vectors of the user's items (recent events
        included), unit length, with the popularity prior's weight as the last coordinate."""
        assert version.content is not None
        rows, weights = profile_interactions(
            profile.seen, profile.recent_items, profile.recent_weights, self.recent_limit
        )
        keep = weights > 0
        rows, weights = rows[keep], weights[keep]
        if not len(rows):
            return None
        vectors = version.content.vectors[rows, :-1]
        mean = (weights.astype(np.float32) @ vectors) / float(weights.sum())
        norm = float(np.linalg.norm(mean))
        if norm == 0.0:
            return None
        prior = self.settings.content_prior
        beta = version.content_prior if prior is None else prior
        return np.append(mean / norm, np.float32(beta)).astype(np.float32)

    def _capabilities(self, version: ServingVersion, profile: UserProfile) -> Capabilities:
        """What could serve this user, from cheap checks; vectors are computed after routing."""
        has_history = len(profile.recent_items) > 0 or len(profile.seen) > 0
        known = profile.known
        return Capabilities(
            als=(known and "als" in profile.embeddings) or (version.foldin is not None and has_history),
            content=version.content is not None and has_history,
            two_tower=version.two_tower is not None
            and (
                (known and "two_tower" in profile.embeddings)
                or (version.user_tower is not None and has_history)
            ),
        )

    async def _vectors(
        self, method: Method, version: ServingVersion, profile: UserProfile, variant: Variant
    ) -> UserVectors:
        out = UserVectors()
        # The ensemble may recompute both vectors from the same history: read it once.
        history = self._history(profile) if method is Method.ensemble and profile.live else None
        if method in (Method.als, Method.ensemble):
            out.als = await self._als_vector(version, profile, history)
        if method in (Method.two_tower, Method.ensemble):
            out.two_tower = self._two_tower_vector(version, profile, history)
        if method is Method.content_based or (
            method is Method.ensemble and self._blends_content(version, variant)
        ):
            out.content = self._content_query(version, profile)
        return out

    def _blends_content(self, version: ServingVersion, variant: Variant) -> bool:
        """Whether this request's ensemble blends in the content model (the version's fitted
        weights, or the variant's)."""
        if version.content is None or version.fusion is None:
            return False
        return self._fusion(version, variant).weights.get("content", 0.0) > 0

    @staticmethod
    def _usable(method: Method, vectors: UserVectors) -> bool:
        if method is Method.ensemble:
            return vectors.als is not None and vectors.two_tower is not None
        if method is Method.als:
            return vectors.als is not None
        if method is Method.two_tower:
            return vectors.two_tower is not None
        if method is Method.content_based:
            return vectors.content is not None
        return True

    async def _plan(
        self, version: ServingVersion, profile: UserProfile, variant: Variant
    ) -> tuple[Route, UserVectors]:
        """Route, then compute the vectors the route needs; a method whose vector turns out
        missing (a fold-in with only dislikes, say) is struck off and the user routed again."""
        thresholds = self._thresholds[variant.name]
        caps = self._capabilities(version, profile)
        while True:
            chosen = route(profile.count, caps, thresholds)
            vectors = await self._vectors(chosen.method, version, profile, variant)
            if self._usable(chosen.method, vectors):
                return chosen, vectors
            method = chosen.method
            caps = replace(
                caps,
                als=caps.als and not (method in (Method.als, Method.ensemble) and vectors.als is None),
                content=caps.content and method is not Method.content_based,
                two_tower=caps.two_tower
                and not (method in (Method.two_tower, Method.ensemble) and vectors.two_tower is None),
            )

    async def candidates_many(
        self, requests: list[tuple[CandidatesRequest, Variant]], k: int, in_flight: int = 16
    ) -> list[Answer]:
        """Each request through `candidates`, the same path as a single call, with a bounded
        number in flight: store reads overlap and searches keep the search threads busy, while a
        batch of thousands never holds thousands of coroutines and answers at once."""
        answers: list[Answer | None] = [None] * len(requests)
        gate = asyncio.Semaphore(in_flight)

        async def one(i: int, req: CandidatesRequest, variant: Variant) -> None:
            async with gate:
                answers[i] = await self.candidates(req, k, variant)

        await asyncio.gather(*(one(i, req, variant) for i, (req, variant) in enumerate(requests)))
        return [a for a in answers if a is not None]

    async def candidates(self, req: CandidatesRequest, k: int, variant: Variant) -> Answer:
        version = self.registry.for_variant(variant)
        if version is None:
            raise NoVersionError("no model version is loaded yet; publish one (recsys publish)")
        profile = await self._profile(version, req.user_id)
        if profile is not None:
            await self.sync_catalog(profile.catalog_generation)
        filt = self.compile(req.filters, version)
        exclude = profile.seen if profile is not None and req.exclude_seen else None
        reason: str | None = None
        vectors = UserVectors()
        if profile is None:
            chosen = route(None, Capabilities(), self._thresholds[variant.name])
            reason = "store unavailable"
        else:
            chosen, vectors = await self._plan(version, profile, variant)
            if chosen.is_fallback:
                reason = f"{chosen.wanted} unavailable for this user"
        pin_problem = self.registry.pin_problem(variant)
        if pin_problem is not None:
            reason = pin_problem if reason is None else f"{pin_problem}; {reason}"
        method_used = chosen.method.value
        try:
            ranked = None
            if profile is not None and self._ranks(version, chosen, variant):
                ranked = await self._ranked_or_none(
                    chosen, version, vectors, profile, k, filt, exclude, variant
                )
            if ranked is not None:
                rows, scores, source = ranked
                method_used = f"{chosen.method.value}+ranker"
            else:
                rows, scores, source = await self._run(
                    chosen, version, vectors, profile, k, filt, exclude, variant
                )
        except Exception:  # a strategy bug must cost this request its model, not a 500
            log.exception("%s failed for user %r; answering with popularity", chosen.method, req.user_id)
            chosen = Route(chosen.tier, Method.popularity_fallback, chosen.wanted)
            method_used = chosen.method.value
            reason = f"{chosen.wanted} failed"
            rows, scores = version.popularity.top(k, filt.passing, self._excluded(filt, exclude))
            source = "popularity"
        self.metrics.child(self.metrics.candidates, variant.name, chosen.tier.value, method_used).inc()
        ids = version.item_ids
        n = len(ids)
        if len(rows) and int(rows.max()) >= n:  # new items joined in (content_based)
            view = self.catalog_view(version)
            names = [view.item_id(r, ids) for r in rows.tolist()]
        else:
            names = [ids[r] for r in rows.tolist()]
        if isinstance(source, str):
            candidates = [
                {"item_id": i, "score": s, "source": source}
                for i, s in zip(names, scores.tolist(), strict=True)
            ]
        else:
            candidates = [
                {"item_id": i, "score": s, "source": src}
                for i, s, src in zip(names, scores.tolist(), source, strict=True)
            ]
        body = {
            "user_id": req.user_id,
            "tier": chosen.tier.value,
            "method_used": method_used,
            "model_version": version.name,
            "variant": variant.name,
            "candidates": candidates,
        }
        return Answer(body, reason)

    def _ranks(self, version: ServingVersion, chosen: Route, variant: Variant) -> bool:
        """Whether this answer goes through the version's ranker: the variant (else the service)
        enables it, and the user's tier is one where it won on validation."""
        ranker = version.ranker
        enabled = variant.ranker if variant.ranker is not None else self.settings.ranker
        if not enabled or ranker is None:
            return False
        tiers = self.settings.ranker_tiers if self.settings.ranker_tiers is not None else ranker.tiers
        return chosen.tier.value in tiers

    async def _ranked_or_none(
        self,
        chosen: Route,
        version: ServingVersion,
        vectors: UserVectors,
        profile: UserProfile,
        k: int,
        filt: CompiledFilter,
        exclude: np.ndarray | None,
        variant: Variant,
    ) -> Ranked | None:
        """The ranked answer, or None (counted) when ranking fails: the caller answers unranked."""
        try:
            return await self._ranked(chosen, version, vectors, profile, k, filt, exclude, variant)
        except Exception:  # the ranker must never cost the request its answer
            self.metrics.ranker_failures.inc()
            log.exception("ranker failed for user %r; answering unranked", profile.user_id)
            return None

    async def _ranked(
        self,
        chosen: Route,
        version: ServingVersion,
        vectors: UserVectors,
        profile: UserProfile,
        k: int,
        filt: CompiledFilter,
        exclude: np.ndarray | None,
        variant: Variant,
    ) -> Ranked | None:
        """Every source's top list under the request's filters and the catalog, merged, featured
        (feature_store/ranking_features.py) and ordered by the version's ranker."""
        ranker = version.ranker
        assert ranker is not None
        depth = ranker.per_source
        als = vectors.als if vectors.als is not None else await self._als_vector(version, profile)
        two_tower = vectors.two_tower
        if two_tower is None and version.two_tower is not None:
            two_tower = self._two_tower_vector(version, profile)
        content = vectors.content
        if content is None and version.content is not None:
            content = self._content_query(version, profile)
        lists: dict[str, np.ndarray] = {}
        if als is not None:
            lists["als"], _ = await self._search(version.als, als, depth, filt, exclude, variant)
        if two_tower is not None and version.two_tower is not None:
            lists["two_tower"], _ = await self._search(
                version.two_tower, two_tower, depth, filt, exclude, variant
            )
        if content is not None and version.content is not None:
            own = self._own_items(profile, exclude)
            lists["content"], _ = await self._search(version.content, content, depth, filt, own, variant)
        lists["popularity"], _ = version.popularity.top(depth, filt.passing, self._excluded(filt, exclude))
        rows = candidates(lists)
        if not len(rows):
            return None
        user = UserSide(
            count=profile.count,
            tier=TIERS.index(chosen.tier.value),
            recent=np.asarray(profile.recent_items, np.int64)[::-1],  # the store keeps newest last
            als=als,
            two_tower=two_tower,
            content=content[:-1] if content is not None else None,  # the popularity prior off
        )

        def score() -> np.ndarray:
            return ranker.score(candidate_features(rows, lists, user, ranker.items, ranker.as_of))

        # Small work stays on the event loop, as small exact searches do: handing 200 candidates
        # of a 55-tree model to a search thread cost the server 1 ms of CPU more per answer than
        # the 0.4 ms of work (the thread waits for the GIL the loop holds), and doubled the p99
        # added by ranking (docs/ranking.md). A large model still leaves the loop.
        if len(rows) * ranker.comparisons <= self.settings.ranker_inline_max_work:
            scores = score()
        else:
            scores = await asyncio.get_running_loop().run_in_executor(self.executor, score)
        order = np.argsort(-scores, kind="stable")[:k]
        return rows[order], scores[order], "ranker"

    @staticmethod
    def _excluded(filt: CompiledFilter, exclude: np.ndarray | None) -> np.ndarray:
        if exclude is None or not len(exclude):
            return filt.denied
        return np.concatenate([filt.denied, exclude.astype(np.int64)])

    def _fusion(self, version: ServingVersion, variant: Variant) -> FusionParams:
        assert version.fusion is not None
        weights, rrf_k = self._fusion_override[variant.name]
        base = version.fusion
        return FusionParams(weights or base.weights, rrf_k or base.rrf_k, base.depth, base.method)

    async def _search(
        self,
        index: Any,
        vector: np.ndarray,
        k: int,
        filt: CompiledFilter,
        exclude: np.ndarray | None,
        variant: Variant,
    ) -> tuple[np.ndarray, np.ndarray]:
        started = time.perf_counter()
        result = await index.asearch(vector, k, filt, exclude, self._params[variant.name], self.executor)
        self.metrics.child(self.metrics.search_seconds, result.plan.value).observe(
            time.perf_counter() - started
        )
        return result.rows, result.scores

    @staticmethod
    def _own_items(profile: UserProfile, exclude: np.ndarray | None) -> np.ndarray:
        """The user's own items are never content candidates, whatever exclude_seen says: the
        nearest neighbours of a profile are the items it was built from."""
        own = np.concatenate([np.asarray(profile.recent_items, np.int64), np.asarray(profile.seen, np.int64)])
        return own if exclude is None else np.concatenate([own, np.asarray(exclude, np.int64)])

    async def _run(
        self,
        chosen: Route,
        version: ServingVersion,
        vectors: UserVectors,
        profile: UserProfile | None,
        k: int,
        filt: CompiledFilter,
        exclude: np.ndarray | None,
        variant: Variant,
    ) -> Ranked:
        method = chosen.method
        if method is Method.als and vectors.als is not None:
            rows, scores = await self._search(version.als, vectors.als, k, filt, exclude, variant)
            return (*self._with_new_als(version, vectors.als, rows, scores, k, filt), "als")
        if method is Method.two_tower and vectors.two_tower is not None and version.two_tower is not None:
            return (
                *await self._search(version.two_tower, vectors.two_tower, k, filt, exclude, variant),
                "two_tower",
            )
        if method is Method.content_based and vectors.content is not None and version.content is not None:
            assert profile is not None
            rows, scores = await self._search(
                version.content, vectors.content, k, filt, self._own_items(profile, exclude), variant
            )
            return (*self.with_new_items(version, vectors.content, rows, scores, k, filt), "content_based")
        if method is Method.ensemble and vectors.als is not None and vectors.two_tower is not None:
            assert version.two_tower is not None
            params = self._fusion(version, variant)
            depth = params.depth_for(k)
            indexes = {"als": (version.als, vectors.als), "two_tower": (version.two_tower, vectors.two_tower)}
            skips = {"als": exclude, "two_tower": exclude}
            if vectors.content is not None and version.content is not None:
                assert profile is not None
                indexes["content"] = (version.content, vectors.content)
                skips["content"] = self._own_items(profile, exclude)
            lists: list[tuple[str, np.ndarray]] = []
            for name, (index, vector) in indexes.items():
                if params.method == "blend" and params.weights.get(name, 0.0) <= 0:
                    continue  # a blend takes no candidates from a source it weighs 0
                found, found_scores = await self._search(index, vector, depth, filt, skips[name], variant)
                if name == "als":  # new items with a folded-in vector compete in the ALS list
                    found, _ = self._with_new_als(version, vector, found, found_scores, depth, filt)
                lists.append((name, found))
            n = len(version.item_ids)

            def standardized(name: str, rows: np.ndarray) -> np.ndarray:
                index, vector = indexes[name]
                inside = rows < n
                if inside.all():
                    return index.standardized(vector, rows)
                out = np.empty(len(rows), np.float32)
                out[inside] = index.standardized(vector, rows[inside])
                raw, known = self._new_item_scores(version, name, vector, rows[~inside] - n)
                # A source with no vector of the item counts it as an average item (z = 0): a
                # raw 0 would read as a strong "no" from a model that never saw it.
                out[~inside] = np.where(known, index.standardize(vector, raw), 0.0)
                return out

            rows, scores, sources = fuse(lists, params, k, standardized)
            return rows, scores, sources
        rows, scores = version.popularity.top(k, filt.passing, self._excluded(filt, exclude))
        return (*self._with_new_arrivals(version, rows, scores, k, filt), "popularity")

    def with_new_items(
        self,
        version: ServingVersion,
        query: np.ndarray,
        rows: np.ndarray,
        scores: np.ndarray,
        k: int,
        filt: CompiledFilter,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The content answer with the catalog's new items scored alike (the same query against
        their content rows, catalog.placed_row) and merged in by score."""
        new = self.catalog_view(version).new
        if not len(new):
            return rows, scores
        passing = new.has_content if filt.new_passing is None else new.has_content & filt.new_passing
        candidates = np.flatnonzero(passing)
        return _merged(rows, scores, len(version.item_ids) + candidates, new.content[candidates] @ query, k)

    def _with_new_als(
        self,
        version: ServingVersion,
        query: np.ndarray,
        rows: np.ndarray,
        scores: np.ndarray,
        k: int,
        filt: CompiledFilter,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ALS answer with the new items that have a folded-in vector, scored alike."""
        folded = self.new_item_vectors.get(version.name)
        if not folded:
            return rows, scores
        new = self.catalog_view(version).new
        at = [
            j
            for j, item in enumerate(new.ids)
            if item in folded and (filt.new_passing is None or filt.new_passing[j])
        ]
        if not at:
            return rows, scores
        vectors = np.vstack([folded[new.ids[j]] for j in at])
        return _merged(rows, scores, len(version.item_ids) + np.asarray(at, np.int64), vectors @ query, k)

    def _with_new_arrivals(
        self, version: ServingVersion, rows: np.ndarray, scores: np.ndarray, k: int, filt: CompiledFilter
    ) -> tuple[np.ndarray, np.ndarray]:
        """Popularity's new-arrivals side: new items ranked by the users who took them at run
        time (the stream, item_foldin.py), on the ranking's scale (a share of the most popular
        trained item's score). An item nobody took yet has no evidence and stays out."""
        takers = self.new_item_events.takers
        if not takers:
            return rows, scores
        new = self.catalog_view(version).new
        top = max(version.popularity.top_score, 1.0)
        at, share = [], []
        for j, item in enumerate(new.ids):
            count = takers.get(item, 0)
            if count and (filt.new_passing is None or filt.new_passing[j]):
                at.append(j)
                share.append(min(1.0, count / top))
        if not at:
            return rows, scores
        return _merged(rows, scores, len(version.item_ids) + np.asarray(at, np.int64), np.asarray(share), k)

    def _new_item_scores(
        self, version: ServingVersion, name: str, query: np.ndarray, at: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw scores of new items (positions in the catalog's NewItems) by one ensemble source,
        and whether the source has a vector of each (ALS: folded in; content: from metadata;
        the Two-Tower: none)."""
        new = self.catalog_view(version).new
        scores = np.zeros(len(at), np.float32)
        known = np.zeros(len(at), bool)
        if name == "als":
            folded = self.new_item_vectors.get(version.name, {})
            for i, j in enumerate(at.tolist()):
                vector = folded.get(new.ids[j])
                if vector is not None:
                    scores[i], known[i] = float(vector @ query), True
        elif name == "content":
            scores = (new.content[at] @ query).astype(np.float32)
            known = new.has_content[at]
        return scores, known

    # -- new items' ALS vectors (item_foldin.py) ------------------------------------------------

    async def follow_new_items(self, poll_s: float) -> None:
        """Every `poll_s`, fold the stream's events on new items into their ALS vectors."""
        while True:
            await asyncio.sleep(poll_s)
            try:
                await self.refresh_new_items()
            except (StoreUnavailableError, TimeoutError) as exc:
                self.metrics.store_errors.labels("new_items").inc()
                log.warning("new items not refreshed: %s", exc or "timed out")
            except Exception:  # a bug here must not end the task: the next poll tries again
                log.exception("new items not refreshed")

    async def refresh_new_items(self) -> int:
        """Read the stream since last time; re-solve the ALS vector of every new item whose
        events changed. Returns how many were re-solved."""
        version = self.registry.active
        if version is None or version.foldin is None or version.foldin.biased:
            return 0
        events = self.new_item_events
        new_ids = set(self.catalog_view(version).new.ids)
        if not new_ids:
            # Nothing to fold: skip the stream to now instead of reading it (a busy stream holds
            # millions of events of the items the version knows).
            events.after = f"{int(time.time() * 1000)}-0"
            return 0
        records = self.catalog.records
        oldest = min(records[i].updated_at for i in new_ids) - _NEW_ITEM_LOOKBACK_S
        if _stream_ms(events.after) < oldest * 1000:
            events.after = f"{int(oldest * 1000)}-0"  # no new item existed before that
        changed: set[str] = set()
        for _ in range(_NEW_ITEM_READS):  # bounded work per poll; the next poll goes on
            # Events of every item the version does not know, not only of today's new items: an
            # item's events may reach the stream before its PUT reaches this worker.
            entries = await self.store.read_events(events.after, 10_000)
            changed |= events.add(entries, version.item_rows)
            if len(entries) < 10_000:
                break
        folded = self.new_item_vectors.setdefault(version.name, {})
        due = (changed | {i for i in events.weights if i not in folded}) & new_ids
        if not due:
            return 0
        gram = await self._user_gram(version)
        foldin = version.foldin
        for item in due:
            users = events.weights[item]
            profiles = await asyncio.gather(*(self.store.get_profile(version.name, u, 1) for u in users))
            pairs = [
                (p.embeddings["als"], w)
                for p, w in zip(profiles, users.values(), strict=True)
                if p.known and "als" in p.embeddings
            ]
            if pairs and any(w > 0 for _, w in pairs):
                fixed = np.vstack([v for v, _ in pairs])
                weights = np.array([w for _, w in pairs])
                folded[item] = solve_against(gram, fixed, weights, foldin.alpha, foldin.scaling)
        return len(due)

    async def _user_gram(self, version: ServingVersion) -> np.ndarray:
        """UᵀU + λI of the version's users, summed once (on a thread: millions of users)."""
        gram = self._user_grams.get(version.name)
        if gram is None:
            regularization = float(version.manifest.hyperparameters["regularization"])

            def load() -> np.ndarray:
                with manifest_scope(version.folder, version.manifest.files):
                    factors = load_array(version.folder, USER_FACTORS, mmap=True)
                return user_gram(factors, regularization)

            gram = await asyncio.get_running_loop().run_in_executor(None, load)
            self._user_grams = {version.name: gram}  # only the active version's is kept
        return gram

    # -- POST /interactions ---------------------------------------------------------------------

    def _live_events(self, batch: InteractionBatch, version: ServingVersion | None) -> list[LiveEvent]:
        table = version.event_weights if version is not None else self.settings.event_weights
        now = time.time()
        events = []
        for i, event in enumerate(batch.events):
            weight = event.weight
            if weight is None:
                assert event.event_type is not None
                weight = table.get(event.event_type.strip().lower())
                if weight is None:
                    known = ", ".join(sorted(table))
                    raise field_error(
                        ("body", "events", i, "event_type"),
                        f"unknown event type {event.event_type!r}; known: {known} (or give a weight)",
                        event.event_type,
                    )
            row = version.item_rows.get(event.item_id, -1) if version is not None else -1
            stamp = event.timestamp if event.timestamp is not None else now
            events.append(
                LiveEvent(event.user_id, event.item_id, float(weight), stamp, event.event_type, row)
            )
        return events

    async def record(self, batch: InteractionBatch, request_id: str | None) -> dict[str, Any]:
        """Store a batch once, under its users (every version folds the events in when it reads
        them), and append it to the stream. Raises StoreUnavailableError when the store did not
        confirm it (the caller answers 503)."""
        versions = self.registry.served()
        main = versions[0] if versions else None
        events = self._live_events(batch, main)
        try:
            result = await self.store.record(events, request_id)
        except StoreUnavailableError as exc:
            self.metrics.store_errors.labels("record").inc()
            self.metrics.interactions.labels("not_stored").inc(len(events))
            self.health.failed(str(exc))
            raise
        self.metrics.interactions.labels("duplicate" if result.duplicate else "stored").inc(len(events))
        return {
            "stored": result.stored,
            "duplicate": result.duplicate,
            "unknown_items": sum(1 for e in events if e.item_row < 0),
            "model_version": main.name if main else None,
        }


def _merged(
    rows: np.ndarray, scores: np.ndarray, extra_rows: np.ndarray, extra_scores: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best k of an answer and of extra candidates scored alike, best first."""
    if not len(extra_rows):
        return rows, scores
    top = np.argsort(-extra_scores, kind="stable")[:k]
    all_rows = np.concatenate([rows, np.asarray(extra_rows, np.int64)[top]])
    all_scores = np.concatenate([scores, np.asarray(extra_scores, np.float32)[top]])
    order = np.argsort(-all_scores, kind="stable")[:k]
    return all_rows[order], all_scores[order]


def _stream_ms(entry_id: str) -> int:
    """The milliseconds of a stream entry id (`<ms>-<seq>`); 0 for anything else."""
    head = entry_id.partition("-")[0]
    return int(head) if head.isdigit() else 0
