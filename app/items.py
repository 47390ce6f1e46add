"""The items API behind its routes: write item records to the store, describe an item as the
serving version sees it, and find items like one item.

Writes go to the store (feature_store/catalog.py) under a new catalog generation; this worker
syncs to it before it answers, and every other worker reads the generation with its next profile
read, so a hidden item is out of every answer from the moment the call that hid it returned.
PATCH reads, merges and writes conditionally on what it read (the store refuses a write over a
concurrent one), so two PATCHes of one item never lose each other's change.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import Executor
from dataclasses import replace

import numpy as np

from app.errors import CatalogStaleError, NoVersionError
from app.item_schemas import (
    ItemBatch,
    ItemIn,
    ItemOut,
    ItemPatch,
    ItemsWritten,
    SimilarResponse,
    epoch,
)
from app.recommend import Recommender
from app.retrieval.filters import Filters
from app.retrieval.search import SearchParams
from app.version_registry import VersionRegistry
from app.versions import ServingVersion
from feature_store.base import FeatureStore, StoreUnavailableError
from feature_store.catalog import AttributeValue, CatalogConflictError, ItemRecord

_PATCH_ATTEMPTS = 5


class ItemNotFoundError(Exception):
    """Neither the catalog nor the serving version knows the item."""


class ItemGoneError(Exception):
    """The item was deleted; only a PUT creates it again."""


class ItemsService:
    def __init__(
        self,
        store: FeatureStore,
        registry: VersionRegistry,
        recommender: Recommender,
        executor: Executor | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.recommender = recommender
        self.executor = executor
        self.params = SearchParams(ef_search=recommender.settings.ef_search)

    # -- writes --------------------------------------------------------------------------------

    async def _written(self, generation: int) -> None:
        """This worker serves the change before the call that made it returns (when it cannot
        read it back, its next request does, or refuses to answer: sync_catalog)."""
        with contextlib.suppress(CatalogStaleError):
            await self.recommender.sync_catalog(generation)

    async def put(self, item_id: str, body: ItemIn) -> ItemOut:
        await self._written(await self.store.put_items([_record(item_id, body)]))
        return await self.describe(item_id)

    async def put_batch(self, batch: ItemBatch) -> ItemsWritten:
        records = [_record(entry.item_id, entry) for entry in batch.items]
        generation = await self.store.put_items(records)
        await self._written(generation)
        return ItemsWritten(written=len(records), generation=generation)

    async def patch(self, item_id: str, body: ItemPatch) -> ItemOut:
        for _ in range(_PATCH_ATTEMPTS):
            held = (await self.store.get_items([item_id])).get(item_id)
            if held is not None and held.deleted:
                raise ItemGoneError(item_id)
            if held is None and not self._in_model(item_id):
                raise ItemNotFoundError(item_id)
            changed = self._patched(item_id, held, body)
            try:
                generation = await self.store.put_items(
                    [changed], expected={item_id: held.seq if held else 0}
                )
            except CatalogConflictError:
                continue  # another write came between our read and ours: read again
            await self._written(generation)
            return await self.describe(item_id)
        raise CatalogConflictError(item_id)

    def _patched(self, item_id: str, held: ItemRecord | None, body: ItemPatch) -> ItemRecord:
        sent = body.model_fields_set
        base = held or ItemRecord(item_id=item_id)
        update: dict[str, object] = {"updated_at": time.time()}
        if "hidden" in sent and body.hidden is not None:
            update["hidden"] = body.hidden
        for end in ("available_from", "available_until"):
            if end in sent:
                update[end] = epoch(getattr(body, end))
        if body.attributes is not None:
            current = (
                dict(base.attributes) if base.attributes is not None else self._model_attributes(item_id)
            )
            for name, value in body.attributes.items():
                if value is None:
                    current.pop(name, None)
                else:
                    current[name] = value
            update["attributes"] = current
        merged = base.model_copy(update=update)
        # Validate the merged record as a whole (the window's order, the attribute count).
        ItemPatch(available_from=merged.available_from, available_until=merged.available_until)
        return ItemRecord.model_validate(merged.model_dump())

    async def delete(self, item_id: str) -> ItemOut:
        held = (await self.store.get_items([item_id])).get(item_id)
        if held is None and not self._in_model(item_id):
            raise ItemNotFoundError(item_id)
        gone = ItemRecord(item_id=item_id, deleted=True, updated_at=time.time())
        await self._written(await self.store.put_items([gone]))
        return await self.describe(item_id)

    # -- reads ---------------------------------------------------------------------------------

    def _version(self) -> ServingVersion:
        version = self.registry.active
        if version is None:
            raise NoVersionError("no model version is loaded yet; publish one (recsys publish)")
        return version

    def _in_model(self, item_id: str) -> bool:
        version = self.registry.active
        return version is not None and item_id in version.item_rows

    def _model_attributes(self, item_id: str) -> dict[str, AttributeValue]:
        version = self.registry.active
        row = None if version is None else version.item_rows.get(item_id)
        if version is None or row is None:
            return {}
        return dict(version.attributes.row_values(row))

    async def describe(self, item_id: str) -> ItemOut:
        """What the service knows of the item now, and whether /candidates may return it."""
        await self.recommender.sync_catalog(await self.store.catalog_generation())
        record = self.recommender.catalog.records.get(item_id)
        version = self.registry.active
        row = None if version is None else version.item_rows.get(item_id)
        if record is None and row is None:
            raise ItemNotFoundError(item_id)
        reason = record.blocked_reason(time.time()) if record is not None else None
        new_index = [] if version is None else self._new_indexes(version, item_id)
        if reason is None and row is None and not new_index:
            name = version.name if version is not None else "none"
            reason = (
                f"not in model version {name} and no vector yet: its metadata has no term the "
                "version's content model knows (or it has none), and no events of users the version "
                "knows have been folded in; it is served once either holds, or after a retrain"
            )
        if record is not None and record.attributes is not None:
            attributes, source = dict(record.attributes), "catalog"
        elif row is not None:
            attributes, source = self._model_attributes(item_id), "model"
        else:
            attributes, source = {}, "none"
        return ItemOut(
            item_id=item_id,
            recommendable=reason is None,
            reason=reason,
            model_version=version.name if version is not None else None,
            in_model=row is not None,
            indexes=_indexes(version) if version is not None and row is not None else new_index,
            hidden=record.hidden if record else False,
            deleted=record.deleted if record else False,
            available_from=record.available_from if record else None,
            available_until=record.available_until if record else None,
            attributes=attributes,
            attributes_from=source,
            updated_at=record.updated_at if record else None,
            generation=record.seq if record else 0,
        )

    def _new_indexes(self, version: ServingVersion, item_id: str) -> list[str]:
        """The vectors a new item has at run time: content (from its metadata), ALS (folded in)."""
        new = self.recommender.catalog_view(version).new
        if item_id not in new.ids:
            return []
        out = ["content_based"] if new.has_content[new.ids.index(item_id)] else []
        if item_id in self.recommender.new_item_vectors.get(version.name, {}):
            out.append("als")
        return out

    # -- similar items ---------------------------------------------------------------------------

    async def similar(self, item_id: str, k: int, filters: Filters | None) -> SimilarResponse:
        """The item's own vector as the query of the version's index, by the index's own score
        (ALS: the inner product). Measured on held-out co-interactions and on the next item a
        user took (bench/similar_quality.py), the inner product beat cosine on every set, by 19
        to 145%, and popularity on every next-item set (+79% to 4.3x); on MovieLens
        co-interactions popularity wins (a heavy user's held-out movies are mostly popular)."""
        version = self._version()
        try:
            generation: int | None = await self.store.catalog_generation()
        except StoreUnavailableError:
            generation = None  # the store is down: serve the catalog held (writes need it too)
        await self.recommender.sync_catalog(generation)
        row = version.item_rows.get(item_id)
        if row is None:
            return await self._similar_to_new(version, item_id, k, filters)
        filt = self.recommender.compile(filters, version)
        itself = np.array([row], np.int64)
        for method, index in (
            ("als", version.als),
            ("two_tower", version.two_tower),
            ("content_based", version.content),
        ):
            if index is None:
                continue
            query = np.array(index.vectors[row], np.float32)
            if method == "content_based":
                query[-1] = version.content_prior  # the popularity column weighs as in a user query
            if not np.any(query):
                continue  # a zero vector is similar to nothing: try the next model
            result = await index.asearch(query, k, filt, itself, self.params, self.executor)
            rows, scores = result.rows, result.scores
            break
        else:
            method = "popularity"
            rows, scores = version.popularity.top(
                k, filt.passing, np.concatenate([filt.denied, filt.hidden, itself])
            )
        return self._answer(version, item_id, method, rows, scores)

    async def _similar_to_new(
        self, version: ServingVersion, item_id: str, k: int, filters: Filters | None
    ) -> SimilarResponse:
        """An item added through the API has a content vector (from its metadata) and nothing
        else yet: its neighbours by content, the version's items and the other new ones."""
        view = self.recommender.catalog_view(version)
        known = item_id in view.new.ids and bool(view.new.has_content[view.new.ids.index(item_id)])
        if not known or version.content is None:
            why = "" if item_id not in self.recommender.catalog.records else " (no content model or vector)"
            raise ItemNotFoundError(f"{item_id} is not in model version {version.name}{why}")
        at = view.new.ids.index(item_id)
        query = np.array(view.new.content[at], np.float32)
        query[-1] = version.content_prior
        filt = self.recommender.compile(filters, version)
        passing = np.ones(len(view.new), bool) if filt.new_passing is None else filt.new_passing.copy()
        passing[at] = False  # never the item itself
        filt = replace(filt, new_passing=passing)
        result = await version.content.asearch(query, k, filt, None, self.params, self.executor)
        rows, scores = self.recommender.with_new_items(version, query, result.rows, result.scores, k, filt)
        return self._answer(version, item_id, "content_based", rows, scores)

    def _answer(
        self, version: ServingVersion, item_id: str, method: str, rows: np.ndarray, scores: np.ndarray
    ) -> SimilarResponse:
        view = self.recommender.catalog_view(version)
        ids = version.item_ids
        items = [
            {"item_id": view.item_id(r, ids), "score": s}
            for r, s in zip(rows.tolist(), scores.tolist(), strict=True)
        ]
        return SimilarResponse.model_validate(
            {"item_id": item_id, "method_used": method, "model_version": version.name, "items": items}
        )


def _record(item_id: str, body: ItemIn) -> ItemRecord:
    return ItemRecord(
        item_id=item_id,
        attributes=body.attributes,
        hidden=body.hidden,
        available_from=epoch(body.available_from),
        available_until=epoch(body.available_until),
        updated_at=time.time(),
    )


def _indexes(version: ServingVersion) -> list[str]:
    out = ["als"]
    if version.two_tower is not None:
        out.append("two_tower")
    if version.content is not None:
        out.append("content_based")
    return out
