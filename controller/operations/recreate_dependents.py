"""Containers that share a recreated container's network namespace (`network_mode: container:X`).

Part of the `recreate` operation. The engine stores such a mode as `container:<full id>`, so
after a recreate the dependents still point at the old container's namespace, which lost its
interfaces when it stopped. Each dependent gets a child `recreate` row (with `parent_id`) once
the target has passed its health gate. The child joins the namespace of the target's real
name through `options.network_container`, and it has its own journal, rollback and status.
"""

from __future__ import annotations

from typing import Any

from controller.operations.context import OperationContext
from controller.operations.recreate_state import RecreateState

# Options of the parent that its child rows take over.
INHERITED_OPTIONS = ("settle_seconds", "health_timeout", "recreate_dependents", "max_attempts")


async def find_dependents(ctx: OperationContext, container: dict[str, Any]) -> list[str]:
    """Return the names of the containers whose network mode is `container:` this one."""
    name = str(container.get("Name", "")).lstrip("/")
    modes = {f"container:{container['Id']}", f"container:{name}"}
    listed = await ctx.docker.call("containers", all=True, cli="docker ps --all --no-trunc")
    names = []
    for entry in listed:
        mode = (entry.get("HostConfig") or {}).get("NetworkMode")
        if mode in modes and entry["Id"] != container["Id"]:
            names.append(_primary_name(entry))
    return names


async def insert_dependent_rows(state: RecreateState) -> list[int]:
    """Insert one child recreate row per dependent found at the snapshot; return their ids.

    The ids are journaled after each insert. NOTE: a crash between an insert and its journal
    write makes a later claim insert that child again. The second recreate of the dependent is
    redundant but harmless.
    """
    ctx = state.ctx
    names = state.journal.get("dependents") or []
    inserted: dict[str, int] = dict(state.journal.get("dependent_rows") or {})
    if not names:
        return []
    if not ctx.options["recreate_dependents"]:
        ctx.log(
            "WARNING",
            f"Not recreating {', '.join(names)}, which share the network namespace of the old container "
            "(options.recreate_dependents is false); they have no network until recreated",
        )
        return []

    options: dict[str, Any] = {key: ctx.options[key] for key in INHERITED_OPTIONS}
    options["network_container"] = state.name
    # A dependent keeps its image: it is recreated only to join the new namespace.
    options["pull"] = "missing"
    for name in names:
        if name in inserted:
            continue
        child = await ctx.store.insert(
            type="recreate", container=name, parent_id=ctx.id, host=ctx.row.host, options=options
        )
        inserted[name] = child
        await state.record(dependent_rows=inserted)
        ctx.log("INFO", f"Queued operation {child} to recreate {name} in the network namespace of the new {state.name}")
    return [inserted[name] for name in names if name in inserted]


def _primary_name(entry: dict[str, Any]) -> str:
    """Return a listed container's own name; legacy links add `/other/alias` names beside it."""
    names = [name.lstrip("/") for name in entry.get("Names") or ()]
    own = [name for name in names if "/" not in name]
    return (own or names or [entry["Id"]])[0]
