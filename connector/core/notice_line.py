"""Our one line in a record's comment, beside the administrator's own text (pure).

A YCLIENTS record has one comment, which the administrator writes in. Our write-back keeps a single line there,
marked by a fixed prefix, replaced in place on each write and never added twice; everything else is kept byte for
byte. The same mark lets the parser take our line out of a comment it reads, so the webhook our own write causes
carries the facts we already hold (connector.sources.yclients).
"""

from __future__ import annotations

__all__ = ["PREFIX", "with_notice", "without_notice"]

PREFIX = "🔔 Уведомления:"


def with_notice(comment: str | None, text: str) -> str:
    """The comment with our line reading `text`: replaced where it is, else added on a line of its own."""
    line = f"{PREFIX} {' '.join(text.split())}"
    comment = comment or ""
    start = _start(comment)
    if start is None:
        return f"{comment}\n{line}" if comment else line
    end = comment.find("\n", start)
    return comment[:start] + line + (comment[end:] if end != -1 else "")


def without_notice(comment: str | None) -> str | None:
    """The comment without our line (and the line break we added with it): the administrator's text alone."""
    if comment is None:
        return None
    start = _start(comment)
    if start is None:
        return comment
    end = comment.find("\n", start)
    if start > 0:  # ours came after a line break we put there
        return comment[:start - 1] + (comment[end:] if end != -1 else "")
    return comment[end + 1:] if end != -1 else ""


def _start(comment: str) -> int | None:
    """Where our line starts: at the comment's start, or just after a line break."""
    if comment.startswith(PREFIX):
        return 0
    at = comment.find("\n" + PREFIX)
    return at + 1 if at != -1 else None
