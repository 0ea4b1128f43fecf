"""One module per operation type; each exposes `async def run(ctx) -> result mapping`."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from controller.operations.context import OperationContext

Runner = Callable[[OperationContext], Awaitable[dict[str, Any]]]


def runner_for(kind: str) -> Runner | None:
    """Return the runner of an operation type, or None when this version lacks it."""
    if kind == "start":
        from controller.operations import start

        return start.run
    if kind == "recreate":
        try:
            from controller.operations import recreate
        except ImportError:
            return None
        return recreate.run
    if kind == "update_image":
        try:
            from controller.operations import update_image
        except ImportError:
            return None
        return update_image.run
    return None
