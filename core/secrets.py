"""API keys: read only from the environment, never from a file, never printed.

Each key has a name for the audit log: `name=key` in BANDIT_AUTH_API_KEYS names it, a
plain key is named by its position (`key-1`, `key-2`, ...). A key may end in `=` padding
but has no `=` inside, so `name=key` is never mistaken for a plain key.

Keys are kept as SHA-256 digests, so a wrong key of any length costs the same comparison
(hmac.compare_digest on equal-length digests) and no key text sits in an object that a
log line or a traceback could show.
"""

import hashlib
import hmac
import os
import re

from core.settings import API_KEYS_VARIABLE, SettingsError

# What a bearer token may contain (RFC 6750 b64token): a key outside it could never be sent.
KEY_PATTERN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


class ApiKeys:
    """The configured keys. Empty means access control is off."""

    def __init__(self, keys=(), names=()):
        self._digests = tuple(digest(k.encode()) for k in keys)
        self._names = tuple(names) or tuple(f"key-{n}" for n in range(1, len(keys) + 1))

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self)} keys)"

    def matches(self, candidate: bytes) -> bool:
        """Whether candidate is one of the keys, in time that does not depend on which."""
        return self.name_of(candidate) is not None

    def name_of(self, candidate: bytes) -> str | None:
        """The name of the key candidate is, or None, in time that does not depend on which."""
        wanted = digest(candidate)
        # Compare with every key (no early exit) so timing does not tell which one matched.
        hits = [hmac.compare_digest(wanted, d) for d in self._digests]
        return next((name for name, hit in zip(self._names, hits, strict=True) if hit), None)


def named(position: int, entry: str) -> tuple[str, str]:
    """(name, key) of one entry: `name=key`, or a plain key named by its position."""
    name, equals, key = entry.partition("=")
    if equals and NAME_PATTERN.fullmatch(name) and KEY_PATTERN.fullmatch(key):
        return name, key
    return f"key-{position}", entry


def parse_api_keys(raw: str) -> ApiKeys:
    entries = [k.strip() for k in raw.split(",") if k.strip()]
    pairs = [named(position, entry) for position, entry in enumerate(entries, start=1)]
    for position, (_, key) in enumerate(pairs, start=1):
        if not KEY_PATTERN.fullmatch(key):
            # Never echo the key itself: name only its position.
            raise SettingsError(
                f"{API_KEYS_VARIABLE}: key {position} has a character outside A-Z a-z 0-9 - . _"
                " ~ + / (and trailing =), so no client could send it as a bearer token"
            )
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise SettingsError(f"{API_KEYS_VARIABLE}: two keys have the same name; name each once")
    return ApiKeys([key for _, key in pairs], names)


def load_api_keys(env=None) -> ApiKeys:
    """The keys; none when the variable is unset. A variable that is set but holds no key
    (empty, spaces, commas) is refused: it would silently leave every write open."""
    env = os.environ if env is None else env
    if API_KEYS_VARIABLE not in env:
        return ApiKeys()
    keys = parse_api_keys(env[API_KEYS_VARIABLE])
    if not keys:
        raise SettingsError(
            f"{API_KEYS_VARIABLE} is set but holds no key: give comma-separated keys, or unset"
            " it to run without access control"
        )
    return keys
