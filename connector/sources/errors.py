"""The error a source adapter raises when a payload cannot be turned into an event."""

from __future__ import annotations

__all__ = ["PayloadError"]


class PayloadError(ValueError):
    """A payload is malformed or lacks what we need; `field` names the offending field.

    Field names are the source's own: envelope keys as they are ("resource", "status", "data"),
    keys inside a YCLIENTS record without the "data." prefix ("datetime", "client"), and for the
    generic adapter the mapping key ("starts_at", "patient.phone").
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # keep `field` when the error is pickled (e.g. handed to a worker process)
        return (_rebuild, (str(self), self.field))


def _rebuild(message: str, field: str) -> PayloadError:
    return PayloadError(message, field=field)
