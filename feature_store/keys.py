"""The Redis key schema, in one place so the writer (publish) and the reader (app) agree.

    <prefix>:{meta}:active            the live version name (string)
    <prefix>:{meta}:previous          the version before it, kept for rollback
    <prefix>:{meta}:versions          hash: version -> JSON status (writing / complete, users, ...)
    <prefix>:{meta}:pins              hash: server -> JSON {versions its A/B variants serve, until}
    <prefix>:<version>:{<user>}:p     the user's packed profile written at publish (profile_codec)
    <prefix>:live:{<user>}:e          the user's newest run-time events, of no version: a list of
                                      (time, weight, item id) records (live_view.py), RPUSH + LTRIM
    <prefix>:events                   the append-only event stream (XADD), for the next training run
    <prefix>:{catalog}:gen            the catalog generation: bumped by every items API write
    <prefix>:{catalog}:items          hash: item id -> JSON item record (catalog.py)
    <prefix>:{catalog}:log            sorted set: item id scored by the generation that last wrote it
    <prefix>:idem:<request id>        idempotency marker of a POST /interactions batch (one Redis)
    <prefix>:idem:u:{<user>}:<request id>:<len(user)>
                                      the same, per user of the batch (Redis Cluster)
    <prefix>:idem:s:{<prefix>:events}:<request id>
                                      the same, for the batch's stream entries (Redis Cluster)

Redis Cluster: everything read or written together shares a hash tag. The three meta keys share
`{meta}` so the pointer switch is one atomic script, the three catalog keys share `{catalog}` so a
write of items and its generation is one; all keys of one user and version share
`{<user>}` (and so does the user's live record) so a request reads them in one round trip to one
node. The version sits outside the
tag, so versions of one user spread freely and a whole version can be deleted by pattern.

A batch of events touches several users and the stream, which live in different slots, so on a
cluster its request id is remembered once per slot it writes to: each user's marker shares the
user's tag, and the stream's marker carries `{<prefix>:events}`, whose tag is the stream key's
whole name, so it hashes to the stream key's slot. The user marker ends with the user id's length,
so no two (user, request id) pairs share a marker, whatever braces or colons the ids contain.
The prefix may hold no braces (StoreSettings refuses them): a tag in it would move every key to
one slot. A user id that starts with `}` has an empty tag, which Redis ignores, so that user's
keys spread over slots and a cluster refuses to read them together (its requests fall back).
"""

from __future__ import annotations

from dataclasses import dataclass

from feature_store.version_names import InvalidVersionNameError

# Segments after the prefix that belong to the schema, never to a version.
_SCHEMA_SEGMENTS = frozenset({"live", "idem", "events"})


@dataclass(frozen=True)
class KeySchema:
    prefix: str = "recsys"

    @property
    def active(self) -> str:
        return f"{self.prefix}:{{meta}}:active"

    @property
    def previous(self) -> str:
        return f"{self.prefix}:{{meta}}:previous"

    @property
    def versions(self) -> str:
        return f"{self.prefix}:{{meta}}:versions"

    @property
    def pins(self) -> str:
        return f"{self.prefix}:{{meta}}:pins"

    def lock(self, name: str) -> str:
        """A named lock (a retrain's publish), beside the pointers it guards."""
        return f"{self.prefix}:{{meta}}:lock:{name}"

    @property
    def catalog_generation(self) -> str:
        return f"{self.prefix}:{{catalog}}:gen"

    @property
    def catalog_items(self) -> str:
        return f"{self.prefix}:{{catalog}}:items"

    @property
    def catalog_log(self) -> str:
        return f"{self.prefix}:{{catalog}}:log"

    def live(self, user_id: str) -> str:
        """The user's run-time events, shared by every version (a version is never named 'live':
        names follow family_vN)."""
        return f"{self.prefix}:live:{{{user_id}}}:e"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def idempotency(self, request_id: str) -> str:
        return f"{self.prefix}:idem:{request_id}"

    def user_idempotency(self, request_id: str, user_id: str) -> str:
        """Marker of one user's share of a batch; in the user's slot (Redis Cluster)."""
        return f"{self.prefix}:idem:u:{{{user_id}}}:{request_id}:{len(user_id)}"

    def stream_idempotency(self, request_id: str) -> str:
        """Marker of a batch's stream entries; in the stream key's slot (Redis Cluster)."""
        return f"{self.prefix}:idem:s:{{{self.events}}}:{request_id}"

    def user(self, version: str, user_id: str) -> str:
        """Common stem of one user's keys in one version; ':p' is the published profile."""
        return f"{self.prefix}:{version}:{{{user_id}}}"

    def profile(self, version: str, user_id: str) -> str:
        return self.user(version, user_id) + ":p"

    def version_pattern(self, version: str) -> str:
        """SCAN pattern of every key of a version, refused for a name that would reach keys of
        the schema itself: the pattern of `{meta}` matched the pointer keys, and deleting by it
        deleted them. (Every entry point also holds names to version_names' rule; this is the
        last line, before anything is deleted by pattern.)"""
        if not version or any(c in version for c in ":{}") or version in _SCHEMA_SEGMENTS:
            raise InvalidVersionNameError(
                f"version {version!r} would match the key schema's own keys; nothing deleted"
            )
        return _glob_escape(f"{self.prefix}:{version}:") + "*"

    @property
    def namespace_pattern(self) -> str:
        """SCAN pattern of every key under the prefix."""
        return _glob_escape(f"{self.prefix}:") + "*"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
