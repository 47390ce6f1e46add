"""The typed Python client of the recsys candidate service (sync and async, one surface)."""

from recsys_client.aio import AsyncRecsysClient
from recsys_client.errors import (
    ConflictError,
    GoneError,
    InvalidRequestError,
    NotFoundError,
    RecsysError,
    TooLargeError,
    UnauthorizedError,
    UnavailableError,
)
from recsys_client.models import (
    AttributeCondition,
    Candidate,
    Candidates,
    Event,
    Filters,
    Item,
    ItemBatchEntry,
    ItemIn,
    ItemPatch,
    ItemsWritten,
    Readiness,
    Recorded,
    Similar,
    SimilarItem,
)
from recsys_client.retry import NO_RETRY, RetryPolicy
from recsys_client.sync import RecsysClient

__all__ = [
    "NO_RETRY",
    "AsyncRecsysClient",
    "AttributeCondition",
    "Candidate",
    "Candidates",
    "ConflictError",
    "Event",
    "Filters",
    "GoneError",
    "InvalidRequestError",
    "Item",
    "ItemBatchEntry",
    "ItemIn",
    "ItemPatch",
    "ItemsWritten",
    "NotFoundError",
    "Readiness",
    "Recorded",
    "RecsysClient",
    "RecsysError",
    "RetryPolicy",
    "Similar",
    "SimilarItem",
    "TooLargeError",
    "UnauthorizedError",
    "UnavailableError",
]
