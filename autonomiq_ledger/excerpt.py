"""Bounded excerpts of texts a pipeline may write at any length (`last_error` can be 1 MB)."""

from __future__ import annotations

EXCERPT_CHARS = 4096  # what a log or alert line carries of one error: head and tail
_SNAP = 200           # cut at whitespace within this reach, so no token (or secret) is split


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    """`text` if it fits in `limit` characters, else its head and tail (about `limit` in all)
    around a note of how much was left out; cuts fall on whitespace where possible."""
    text = text or ""
    if len(text) <= limit:
        return text
    half = max(1, limit // 2)
    head, tail = text[:half], text[-half:]
    cut = max(head.rfind(" "), head.rfind("\n"))
    if cut >= half - _SNAP:
        head = head[:cut]
    starts = [i for i in (tail.find(" "), tail.find("\n")) if 0 <= i <= _SNAP]
    if starts:
        tail = tail[min(starts) + 1:]
    left_out = len(text) - len(head) - len(tail)
    return f"{head} …[{left_out} characters left out]… {tail}"
