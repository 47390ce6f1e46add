"""`recsys retrain`: the scheduled job that keeps the service fresh and refuses a worse model.

One run, in order; each step can stop it with a reason, and nothing is published before the end:

1. take the store's `retrain` lock (two retrains never publish over each other; a killed one
   loses it after `retrain_lock_ttl_s`);
2. read the training log and the events recorded at run time since it (the store's stream);
3. check the new days of the log (log_checks.py): size, outage days, bots, event-type shifts,
   unknown items;
4. hold out the newest days (`retrain_holdout_days`, never more than what is newer than the live
   version's data), train a candidate on the rest, and score it and the live version on them
   through the serving code path (fresh_holdout.py);
5. decide (gate.py); if it passes, train the shipped version on all the data with the parameters
   the candidate chose, publish it (atomic), and release the lock.

Every run appends its record to RETRAINS.jsonl (retrain_history.py), whatever the outcome.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_store.factory import open_store
from feature_store.locks import holder_is_dead, new_holder
from feature_store.manifest import read_manifest
from feature_store.settings import StoreSettings
from training import retrain_history
from training.fresh_holdout import VersionScore, fresh_holdout, score_version
from training.gate import Decision, GateLimits, decide
from training.interaction_log import InteractionLog, concat_logs
from training.log_checks import DAY, Problem, check_log
from training.model_set import KeptChoices
from training.settings import TrainSettings
from training.stream_events import read_stream, stream_log

if TYPE_CHECKING:
    import pyarrow as pa

LOCK = "retrain"
KEPT = ("factors", "regularization", "alpha", "iterations", "scaling", "popularity_discount")
Progress = Callable[[str], None]


class Outcome(StrEnum):
    published = "published"
    nothing_new = "nothing_new"
    refused_by_gate = "refused_by_gate"
    refused_by_checks = "refused_by_checks"
    locked = "locked"

    @property
    def exit_code(self) -> int:
        """The process's exit status: a scheduler tells the refusals apart without parsing text."""
        return _EXIT_CODES[self]


_EXIT_CODES = {
    Outcome.published: 0,
    Outcome.nothing_new: 0,
    Outcome.refused_by_gate: 3,
    Outcome.refused_by_checks: 4,
    Outcome.locked: 5,
}


@dataclass
class RetrainReport:
    outcome: Outcome
    reasons: list[str] = field(default_factory=list)
    live_version: str | None = None
    published: str | None = None
    candidate: VersionScore | None = None
    live: VersionScore | None = None
    gate: Decision | None = None
    problems: list[Problem] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def decision(self) -> str:
        return self.outcome.value


def _pinned(settings: TrainSettings, hyper: dict[str, Any]) -> TrainSettings:
    """Settings with the ALS values of a version's manifest pinned (no search)."""
    values = {name: hyper[name] for name in KEPT if hyper.get(name) is not None}
    return settings.model_copy(update=values)


def _live_state(
    store_settings: StoreSettings, artifacts: Path
) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    async def active() -> str | None:
        store = open_store(store_settings)
        try:
            return await store.active_version()
        finally:
            await store.close()

    name = asyncio.run(active())
    if name is None or not (artifacts / name).is_dir():
        return name, {}, {}
    manifest = read_manifest(artifacts / name)
    return name, manifest.hyperparameters, dict(manifest.metrics.get("data") or {})


def _cutoff(newest: int, live_until: int | None, holdout_days: float) -> int:
    """The start of the held-out days: the newest `holdout_days`, but nothing the live version
    was trained on (it would be scored on what it saw)."""
    cut = newest - int(holdout_days * DAY)
    if live_until is not None:
        cut = max(cut, live_until + 1)
    return cut


def run_retrain(
    log: InteractionLog,
    settings: TrainSettings,
    store_settings: StoreSettings,
    *,
    items: pa.Table | None = None,
    known_items: set[str] | None = None,
    keep_params: bool = False,
    force: bool = False,
    progress: Progress = print,
    publish: Callable[[Path], Any] | None = None,
) -> RetrainReport:
    """The whole run (see the module docstring); `publish` publishes a version folder (the CLI's
    with a progress bar; by default the plain one)."""
    from training.pipeline import dataset_from_log, train_all

    started = datetime.now(UTC)
    clock = time.perf_counter()
    timings: dict[str, float] = {}
    artifacts = settings.artifacts
    record: dict[str, Any] = {"started": started.isoformat(timespec="seconds"), "forced": force}
    holder = new_holder("retrain")

    async def lock(take: bool) -> str | None:
        store = open_store(store_settings)
        try:
            if not take:
                await store.release_lock(LOCK, holder)
                return None
            other = await store.acquire_lock(LOCK, holder, settings.retrain_lock_ttl_s)
            if other is not None and holder_is_dead(other):
                progress(f"taking over the lock of a retrain that died: {other}")
                await store.release_lock(LOCK, other)
                other = await store.acquire_lock(LOCK, holder, settings.retrain_lock_ttl_s)
            return other
        finally:
            await store.close()

    def finish(report: RetrainReport) -> RetrainReport:
        record.update(
            decision=report.decision,
            reasons=report.reasons,
            live_version=report.live_version,
            published=report.published,
            candidate=None if report.candidate is None else report.candidate.as_dict(),
            live=None if report.live is None else report.live.as_dict(),
            checks=[{"check": p.check, "message": p.message} for p in report.problems],
            timings_s={k: round(v, 2) for k, v in timings.items()},
            total_s=round(time.perf_counter() - clock, 2),
        )
        retrain_history.append(artifacts, record)
        report.record = record
        return report

    other = asyncio.run(lock(True))
    if other is not None:
        return finish(RetrainReport(Outcome.locked, [f"another retrain holds the lock: {other}"]))
    try:
        live_name, live_hyper, live_data = _live_state(store_settings, artifacts)
        live_until = live_hyper.get("data_until")
        live_until = int(live_until) if isinstance(live_until, int | float) else None
        if log.timestamps is None:
            raise ValueError("the retrain needs a timestamp column: it holds out the newest days")
        newest_logged = int(log.timestamps.max())
        t0 = time.perf_counter()
        stream = asyncio.run(_stream(store_settings, newest_logged))
        timings["read_stream"] = time.perf_counter() - t0
        if stream.log is not None:
            log = concat_logs(log, stream.log)
        record["data"] = {
            "events": len(log),
            "stream_events_added": stream.used,
            "stream_events_already_logged": stream.older,
            "stream_entries_invalid": stream.invalid,
        }
        progress(
            f"log: {len(log):,} events, {stream.used:,} of them from the event stream "
            f"(+{stream.older:,} already in the log, {stream.invalid:,} malformed skipped)"
        )
        assert log.timestamps is not None
        newest = int(log.timestamps.max())
        report_base: dict[str, Any] = {"live_version": live_name}
        if live_until is not None and newest <= live_until:
            return finish(
                RetrainReport(
                    Outcome.nothing_new,
                    [f"no event newer than {live_name}'s data (until {_when(live_until)})"],
                    **report_base,
                )
            )
        cutoff = _cutoff(newest, live_until, settings.retrain_holdout_days)
        window = (live_until + 1) if live_until is not None else cutoff
        record["data"].update(
            new_events=int((log.timestamps >= window).sum()),
            holdout_from=_when(cutoff),
            newest_event=_when(newest),
        )
        problems = check_log(log, window, live_data or None, known_items)
        for problem in problems:
            progress(f"data check: {problem.message}")
        if problems and not force:
            return finish(
                RetrainReport(
                    Outcome.refused_by_checks,
                    [p.message for p in problems],
                    problems=problems,
                    **report_base,
                )
            )
        kept = None
        if keep_params and live_hyper:
            settings = _pinned(settings, live_hyper)
            kept = KeptChoices.from_hyperparameters(live_hyper)
            progress(f"--keep-params: {live_name}'s values, no search: {_kept(live_hyper)}")
        quiet = settings.model_copy(update={"test_split": 0.0})
        before = log.subset(log.timestamps < cutoff)
        holdout = fresh_holdout(log, cutoff, settings.retrain_eval_users, settings.seed)
        progress(
            f"fresh holdout: events from {_when(cutoff)} on, {len(holdout.users):,} users with new items"
        )
        with tempfile.TemporaryDirectory(prefix="recsys-retrain-") as tmp:
            t0 = time.perf_counter()
            progress("candidate: training on the data before the held-out days")
            trial = train_all(
                dataset_from_log(before, settings),
                quiet.model_copy(update={"artifacts": Path(tmp)}),
                items=items,
                progress=progress,
                kept=kept,
            )
            assert trial.version_dir is not None
            timings["candidate_fit"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            candidate = score_version(trial.version_dir, holdout, settings.retrain_k, since=live_until)
            live = None
            if live_name is not None and (artifacts / live_name).is_dir():
                live = score_version(artifacts / live_name, holdout, settings.retrain_k, since=live_until)
            timings["scoring"] = time.perf_counter() - t0
            chosen = read_manifest(trial.version_dir).hyperparameters
        gate = decide(candidate, live, GateLimits(tolerance=settings.retrain_tolerance))
        record["params"] = {name: chosen.get(name) for name in KEPT}
        scored: dict[str, Any] = {"candidate": candidate, "live": live, "gate": gate, "problems": problems}
        if not gate.publish and not force:
            return finish(RetrainReport(Outcome.refused_by_gate, gate.reasons, **report_base, **scored))
        t0 = time.perf_counter()
        progress("shipping: training on all the data with the candidate's parameters")
        final = train_all(
            dataset_from_log(log, settings),
            _pinned(quiet, chosen),
            items=items,
            progress=progress,
            kept=KeptChoices.from_hyperparameters(chosen),
        )
        assert final.version_dir is not None
        timings["final_fit"] = time.perf_counter() - t0
        if asyncio.run(lock(True)) is not None:  # expired during a very long run and taken since
            return finish(
                RetrainReport(
                    Outcome.locked,
                    [f"the lock expired during the run; {final.version_dir.name} was written, not published"],
                    **report_base,
                    **scored,
                )
            )
        t0 = time.perf_counter()
        (publish or _plain_publish(store_settings))(final.version_dir)
        timings["publish"] = time.perf_counter() - t0
        reasons = (
            [f"forced past: {r}" for r in (gate.reasons + [p.message for p in problems])] if force else []
        )
        return finish(
            RetrainReport(
                Outcome.published,
                reasons,
                published=final.version_dir.name,
                **report_base,
                **scored,
            )
        )
    finally:
        asyncio.run(lock(False))


async def _stream(store_settings: StoreSettings, newest_logged: int) -> Any:
    store = open_store(store_settings)
    try:
        return stream_log(await read_stream(store), newest_logged)
    finally:
        await store.close()


def _plain_publish(store_settings: StoreSettings) -> Callable[[Path], Any]:
    def go(folder: Path) -> Any:
        from feature_store.publish import publish_version

        async def run() -> Any:
            store = open_store(store_settings, bulk=True)
            try:
                return await publish_version(folder, store)
            finally:
                await store.close()

        return asyncio.run(run())

    return go


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if math.isfinite(ts) else "?"


def _kept(hyper: dict[str, Any]) -> str:
    return ", ".join(f"{name}={hyper[name]}" for name in KEPT if name in hyper)
