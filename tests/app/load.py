"""Clients asking the service in a loop while a test breaks the store under it, answer by answer."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx


@dataclass
class Answer:
    at: float  # seconds since the run started
    status: int
    method: str
    seconds: float
    user: str = ""


class Load:
    """`threads` clients asking for `users` in a loop, and one reading /readyz, until stopped:
    what a load run sees, answer by answer, while the store dies under it."""

    def __init__(self, url: str, users: list[str], threads: int = 4) -> None:
        self.url, self.users, self.started = url, users, time.perf_counter()
        self.answers: list[Answer] = []
        self.ready: list[tuple[float, str]] = []  # (when, status) at every change of status
        self.reasons: list[str | None] = []  # the store's reason at each of those changes
        self.stop = threading.Event()
        self.workers = [threading.Thread(target=self._ask, args=(i,)) for i in range(threads)]
        self.workers.append(threading.Thread(target=self._probe))

    def now(self) -> float:
        return time.perf_counter() - self.started

    def _ask(self, seed: int) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            i = seed
            while not self.stop.is_set():
                user = self.users[i % len(self.users)]
                at = self.now()
                try:
                    r = client.post("/candidates", json={"user_id": user, "k": 10})
                    method = r.json().get("method_used", "?") if r.status_code == 200 else r.text[:200]
                    answer = Answer(at, r.status_code, method, self.now() - at, user)
                except httpx.HTTPError as exc:
                    answer = Answer(at, 0, type(exc).__name__, self.now() - at, user)
                self.answers.append(answer)
                i += 7

    def _probe(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self.stop.is_set():
                r = client.get("/readyz")
                if r.status_code in (200, 503):
                    body = r.json()
                    status, reason = body["status"], body["store"]["reason"]
                else:  # a 500 is an answer too: recorded, not a dead probe thread
                    status, reason = f"http {r.status_code}", r.text[:200]
                if not self.ready or self.ready[-1][1] != status:
                    self.ready.append((self.now(), status))
                    self.reasons.append(reason)
                time.sleep(0.02)

    def __enter__(self) -> Load:
        for w in self.workers:
            w.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for w in self.workers:
            w.join()

    def __exit__(self, *exc: object) -> None:
        self.finish()
