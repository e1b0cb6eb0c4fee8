"""Content negotiation: which of the types a path offers the request's Accept header prefers.

Each offered type takes the quality of the most specific range that matches it (RFC 9110
12.5.1): `text/html` beats `*/*`. Ties go to the type offered first, so a client that
sends `*/*` (curl) or nothing gets the first, JSON, as before pages existed.
"""


def ranges(accept: str) -> list[tuple[str, float]]:
    """(media range, quality) of each entry of an Accept header; a bad q counts as 0."""
    found = []
    for entry in accept.split(","):
        media, *params = (part.strip() for part in entry.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        if media:
            found.append((media.lower(), quality))
    return found


def specificity(media_range: str, offered: str) -> int:
    """3 for an exact match, 2 for type/*, 1 for */*, 0 when the range does not match."""
    if media_range == offered:
        return 3
    if media_range == "*/*":
        return 1
    kind, _, subtype = media_range.partition("/")
    return 2 if subtype == "*" and offered.startswith(kind + "/") else 0


def quality(accept: list[tuple[str, float]], offered: str) -> tuple[float, int]:
    matches = [(specificity(m, offered), q) for m, q in accept if specificity(m, offered)]
    if not matches:
        return 0.0, 0
    level, q = max(matches)
    return q, level


def preferred(accept: str | None, offered: list[str]) -> str:
    """The offered type the header prefers; the first when it names none of them."""
    if not accept:
        return offered[0]
    parsed = ranges(accept)
    scores = [quality(parsed, media) for media in offered]
    best = max(range(len(offered)), key=lambda i: (scores[i], -i))
    return offered[best] if scores[best][0] > 0 else offered[0]
