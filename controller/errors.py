"""The two kinds of operation failure, and the rule for everything else.

A `PermanentError` fails the operation at once: retrying cannot help (an invalid spec, an
image that does not exist, a rejected login, a name conflict). A `TransientError` is retried
with backoff up to the operation's `max_attempts`; it may carry the delay the other side asked
for (a registry's Retry-After). Any other exception that escapes a step is a bug or an
unforeseen engine response: the reactor fails the operation with the exception's text and logs
the traceback, and the controller keeps serving other rows.
"""

from __future__ import annotations


class OperationError(Exception):
    """Base class of the errors an operation step raises on purpose."""


class PermanentError(OperationError):
    """A failure that retrying cannot fix."""


class TransientError(OperationError):
    """A failure that may pass: the engine or a registry is unreachable or overloaded.

    `retry_after` is the delay in seconds that the other side asked for, if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SpecError(PermanentError):
    """An operation row or spec that cannot be understood.

    `field` names the column or spec key involved (for example `spec.ports[1]`), so the
    message can point the user at the exact value to fix.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class AuthenticationError(PermanentError):
    """A registry rejected the credentials, or demanded some and none were configured."""


class CancelledByRequest(OperationError):
    """The operation saw `cancel_requested` at a step boundary."""
