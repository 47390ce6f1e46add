"""The one rule for model version names: `<family>_v<N>`, such as `als_v3`.

A version name travels far: it is a folder under the artifacts directory, a segment of every Redis
key of the version (`<prefix>:<version>:{<user>}:p`), a value of the store's active pointer that
anyone with write access to the store can set, and a field of `/admin/activate`. Anything looser
than this rule has been a path (`..`, `/abs/path`, `../../x`) or a key pattern (`{meta}`, whose
cleanup deleted the store's own pointer keys). So a version is data, never a path, and every entry
point checks it here: training (`next_version`), publish, activate (both stores, the admin route,
the CLI), the pointer read at start-up and in the poll, and `LATEST`.

The family is lowercase letters and digits starting with a letter (the code has one family,
`als`; a train-all version is an `als` version too), the number has no leading zero and at most
nine digits. No dots, slashes, braces, wildcards, whitespace or upper case can pass.
"""

from __future__ import annotations

import re

VERSION_PATTERN = r"^[a-z][a-z0-9]{0,31}_v[1-9][0-9]{0,8}$"
# fullmatch, not `$`: Python's `$` also matches before a trailing newline ("als_v1\n").
VERSION_NAME = re.compile(r"(?P<family>[a-z][a-z0-9]{0,31})_v(?P<number>[1-9][0-9]{0,8})")
MAX_VERSION_NAME = 32 + 2 + 9


class InvalidVersionNameError(ValueError):
    """A version name that does not follow the rule; the message shows the rule, not a traceback."""


def is_version_name(name: object) -> bool:
    """Whether `name` is a str that follows the rule (never raises: pointers are untrusted data)."""
    return isinstance(name, str) and VERSION_NAME.fullmatch(name) is not None


def check_version_name(name: object, what: str = "version name") -> str:
    """`name` itself when it follows the rule; InvalidVersionNameError saying why otherwise."""
    if is_version_name(name):
        assert isinstance(name, str)
        return name
    shown = repr(name)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise InvalidVersionNameError(
        f"{what} {shown} is not valid: expected <family>_v<N> such as als_v3 (a lowercase family of "
        "letters and digits, then _v and a number from 1; no dots, slashes or braces)"
    )


def split_version_name(name: str) -> tuple[str, int] | None:
    """`als_v12` -> ('als', 12); None for anything that does not follow the rule."""
    match = VERSION_NAME.fullmatch(name) if isinstance(name, str) else None
    return (match["family"], int(match["number"])) if match else None
