"""The service in this process: `recommend(user_id, limit=10)` for notebooks, batch jobs and tests.

The training guide the product grew from calls a model the way a notebook does,
`ALSInference('models/als_v1.pkl').recommend(user_id=..., limit=10)`. `LocalService` is that
call over a trained version, answering what `POST /candidates` answers: it builds the HTTP app's
own objects (`app.state.open_services`: the registry, the recommender, the routing, the filters,
the fallbacks) on the embedded store, so the same code decides the tier, the method and the
items. No server, no Redis, no port.

It serves one version for its whole life: the version folder it was opened on, or the artifacts
folder's active version (`ACTIVE.json`, written by `recsys publish`), else its latest trained one
(`LATEST`, written by `recsys train`). Items hidden or changed through the items API of a server
on the same folder (`CATALOG.jsonl`) are honoured; events recorded at run time by such a server
live in that server's memory and are not seen here.

The calls are synchronous: the service's coroutines run on an event loop of its own, in a
thread, so it works the same from a script, a notebook (whose loop is already running) or a
thread pool.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.errors import validation_body
from app.experiments import Variant, load_experiment
from app.metrics import ServiceMetrics
from app.recommend import Answer
from app.retrieval.filters import Filters
from app.schemas import CandidatesRequest, InteractionBatch
from app.settings import ServeSettings
from app.state import Services, open_services
from feature_store.embedded_store import EmbeddedStore
from feature_store.manifest import MANIFEST_NAME, read_latest
from feature_store.settings import StoreSettings
from feature_store.version_names import check_version_name
from feature_store.version_paths import ArtifactError

T = TypeVar("T")


class InvalidRequestError(ValueError):
    """What the HTTP API answers with a 422: `errors` lists each field (`loc`) and why (`msg`)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        parts = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        super().__init__(f"invalid request: {parts}")


@dataclass(frozen=True)
class Candidate:
    item_id: str
    score: float
    source: str


@dataclass(frozen=True)
class Recommendation:
    """One user's answer: the body of `POST /candidates` and its fallback header."""

    user_id: str
    tier: str
    method_used: str
    model_version: str
    variant: str
    candidates: list[Candidate]
    fallback_reason: str | None

    @property
    def items(self) -> list[str]:
        return [c.item_id for c in self.candidates]

    @classmethod
    def from_answer(cls, answer: Answer) -> Recommendation:
        body = answer.body
        return cls(
            user_id=body["user_id"],
            tier=body["tier"],
            method_used=body["method_used"],
            model_version=body["model_version"],
            variant=body["variant"],
            candidates=[Candidate(c["item_id"], c["score"], c["source"]) for c in body["candidates"]],
            fallback_reason=answer.fallback_reason,
        )


def resolve(path: Path) -> tuple[Path, str]:
    """A version folder, or an artifacts folder -> (artifacts folder, version name)."""
    if (path / MANIFEST_NAME).is_file():
        check_version_name(path.name)
        return path.parent, path.name
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such folder; give a version folder or the artifacts folder")
    active = EmbeddedStore(path)._read_pointer()["active"]  # the file `recsys publish` writes
    name = active or read_latest(path)
    if name is None:
        raise ArtifactError(f"{path}: no version here (no ACTIVE.json, no LATEST); run `recsys train` first")
    check_version_name(name, f"{path.name}'s active or latest version")
    if not (path / name / MANIFEST_NAME).is_file():
        raise ArtifactError(f"{path / name}: the named version has no {MANIFEST_NAME}")
    return path, name


class LocalService:
    """`LocalService("artifacts").recommend("u42", limit=10)`: see the module docstring."""

    def __init__(self, path: str | Path = "artifacts", settings: ServeSettings | None = None) -> None:
        artifacts, self.version = resolve(Path(path))
        base = settings or ServeSettings(artifacts=artifacts)
        # One version for the service's life: no pointer polling, no stream following.
        self.settings = base.model_copy(
            update={"artifacts": artifacts, "reload_poll_s": 0, "new_item_poll_s": 0}
        )
        store_settings = StoreSettings(artifacts=artifacts, redis_url=None)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="recsys-local", daemon=True)
        self._thread.start()
        try:
            self._svc: Services = self._run(self._open(store_settings))
        except BaseException:
            self._stop_loop()
            raise

    async def _open(self, store_settings: StoreSettings) -> Services:
        store = EmbeddedStore(
            store_settings.artifacts,
            recent_limit=store_settings.recent_limit,
            live_events_per_user=store_settings.live_events_per_user,
            pointer_file=False,
        )
        await store.activate(self.version)
        experiment = load_experiment(self.settings.ab_config)
        svc = await open_services(self.settings, store_settings, experiment, ServiceMetrics(), 1, store)
        if svc.registry.active is None:
            problem = svc.registry.failed.get(self.version, "it could not be loaded (see the log)")
            await svc.close()
            raise ArtifactError(f"{self.version}: {problem}")
        return svc

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def _request(
        self, user_id: str, limit: int, filters: Filters | Mapping[str, Any] | None, exclude_seen: bool
    ) -> CandidatesRequest:
        try:
            return CandidatesRequest(
                user_id=user_id,
                k=limit,
                filters=filters,  # a mapping is validated into Filters
                exclude_seen=exclude_seen,
            )
        except ValidationError as exc:
            raise InvalidRequestError(validation_body(exc.errors())["detail"]) from None

    def _variant(self, name: str | None, user_id: str) -> Variant:
        try:
            return self._svc.variant_for(name, user_id)
        except RequestValidationError as exc:
            raise InvalidRequestError(validation_body(exc.errors())["detail"]) from None

    def _limit(self, limit: int) -> int:
        if not 1 <= limit <= self.settings.max_k:
            raise InvalidRequestError(
                [{"loc": ["limit"], "msg": f"must be 1 to {self.settings.max_k} (the configured max_k)"}]
            )
        return limit

    def recommend(
        self,
        user_id: str,
        limit: int = 10,
        filters: Filters | Mapping[str, Any] | None = None,
        exclude_seen: bool = True,
        variant: str | None = None,
    ) -> Recommendation:
        """What `POST /candidates` answers for `{"user_id", "k": limit, "filters", "exclude_seen"}`
        with `X-AB-Variant: variant`; `filters` takes the API's JSON shape."""
        k = self._limit(limit)
        request = self._request(user_id, k, filters, exclude_seen)
        answers = self._answer([(request, self._variant(variant, user_id))], k)
        return answers[0]

    def recommend_many(
        self,
        user_ids: Iterable[str],
        limit: int = 10,
        filters: Filters | Mapping[str, Any] | None = None,
        exclude_seen: bool = True,
        variant: str | None = None,
        chunk: int = 1_000,
    ) -> Iterable[Recommendation]:
        """`recommend` for each user, in order, computed `chunk` users at a time (the batch
        endpoint's path), so a file of millions of ids streams through bounded memory."""
        k = self._limit(limit)
        parsed = self._request("-", k, filters, exclude_seen).filters  # validated once
        batch: list[str] = []
        for user_id in user_ids:
            batch.append(user_id)
            if len(batch) >= chunk:
                yield from self._many(batch, k, parsed, exclude_seen, variant)
                batch = []
        if batch:
            yield from self._many(batch, k, parsed, exclude_seen, variant)

    def _many(
        self, users: Sequence[str], k: int, filters: Filters | None, exclude_seen: bool, variant: str | None
    ) -> list[Recommendation]:
        requests = [(self._request(u, k, filters, exclude_seen), self._variant(variant, u)) for u in users]
        return self._answer(requests, k)

    def _answer(self, requests: list[tuple[CandidatesRequest, Variant]], k: int) -> list[Recommendation]:
        try:
            answers = self._run(self._svc.recommender.candidates_many(requests, k))
        except RequestValidationError as exc:  # a filter naming what the version cannot test
            raise InvalidRequestError(validation_body(exc.errors())["detail"]) from None
        return [Recommendation.from_answer(a) for a in answers]

    @property
    def item_count(self) -> int:
        """Items the loaded version can recommend (its index; the run-time catalog's additions aside)."""
        active = self._svc.registry.active
        return len(active.item_ids) if active is not None else 0

    def record(self, events: Iterable[Mapping[str, Any]], request_id: str | None = None) -> dict[str, Any]:
        """What `POST /interactions` does with `{"events": [...], "request_id"}`: the events are
        folded into their users' next answers (in this process's store; nothing is streamed)."""
        try:
            batch = InteractionBatch(events=list(events), request_id=request_id)
        except ValidationError as exc:
            raise InvalidRequestError(validation_body(exc.errors())["detail"]) from None
        try:
            return self._run(self._svc.recommender.record(batch, request_id))
        except RequestValidationError as exc:  # an unknown event type
            raise InvalidRequestError(validation_body(exc.errors())["detail"]) from None

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._svc.close())
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> LocalService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
