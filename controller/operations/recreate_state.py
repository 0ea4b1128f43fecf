"""The journal of one recreate, the names and ids its steps work on, and a shared step.

Part of the `recreate` operation (see `recreate` for the steps). Everything a later claim needs
to go on or to undo the recreate is in `result.journal`, written with `save_journal` before the
next step starts:

- `container`, `old_id`, `old_image_id`, `was_running`, `auto_remove`, `snapshot` (the
  container's and its image's inspect output): written before anything changes;
- `image`, `new_image_id`: the verified new image;
- `new_id`, `connected`: the new container under its temporary name;
- `stop_issued`, `stopped`, `old_renamed`, `new_renamed`, `started`, `downtime_seconds`:
  the switch-over;
- `gate_passed`, `old_removed`, `dependents`: the end;
- `rollback_reason`, `rolled_back`: an undo in progress or done.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from controller.operations.context import OperationContext
from controller.specs.cli_render import render_network_connect
from controller.specs.plan import NetworkAttachment


class RecreateState:
    """One recreate's journal entries and the container names derived from them."""

    def __init__(self, ctx: OperationContext) -> None:
        self.ctx = ctx

    @property
    def journal(self) -> dict[str, Any]:
        return self.ctx.journal

    async def record(self, **entries: Any) -> None:
        """Write finished steps to the journal, durably."""
        await self.ctx.save_journal(**entries)

    @property
    def name(self) -> str:
        """The container's real name, from the journal once the snapshot is taken."""
        return self.journal.get("container") or str(self.ctx.request.container)

    @property
    def temporary_name(self) -> str:
        """The name the new container has until the old one is stopped."""
        return f"{self.name}-dw{self.ctx.id}-new"

    @property
    def aside_name(self) -> str:
        """The name the old container gets after its stop, until it is removed or restored."""
        return f"{self.name}-dw{self.ctx.id}-old"

    @property
    def old_id(self) -> str:
        return str(self.journal["old_id"])

    @property
    def new_id(self) -> str | None:
        return self.journal.get("new_id")

    @property
    def was_running(self) -> bool:
        return bool(self.journal.get("was_running"))

    @property
    def auto_remove(self) -> bool:
        """Whether the engine deletes the old container when it stops (`HostConfig.AutoRemove`)."""
        return bool(self.journal.get("auto_remove"))

    @property
    def snapshot_container(self) -> dict[str, Any]:
        return self.journal["snapshot"]["container"]

    @property
    def snapshot_image(self) -> dict[str, Any] | None:
        return self.journal["snapshot"].get("image")

    def outcome(self) -> dict[str, Any]:
        """Return the ids and figures that `result` reports, whatever the outcome."""
        journal = self.journal
        return {
            "container": self.name,
            "image": journal.get("image"),
            "old_container_id": journal.get("old_id"),
            "new_container_id": journal.get("new_id"),
            "old_image_id": journal.get("old_image_id"),
            "new_image_id": journal.get("new_image_id"),
            "downtime_seconds": journal.get("downtime_seconds"),
        }


async def connect_networks(
    ctx: OperationContext, container_id: str, name: str, attachments: Iterable[NetworkAttachment]
) -> None:
    """Connect a created container to its further networks, which API 1.41 cannot name at create."""
    for attachment in attachments:
        ipam = attachment.extra.get("IPAMConfig") or {}
        await ctx.docker.call(
            "connect_container_to_network",
            container_id,
            attachment.name,
            ipv4_address=attachment.ipv4_address,
            ipv6_address=attachment.ipv6_address,
            aliases=list(attachment.aliases) or None,
            link_local_ips=ipam.get("LinkLocalIPs"),
            driver_opt=attachment.extra.get("DriverOpts"),
            mac_address=attachment.mac_address,
            cli=render_network_connect(attachment.name, name, attachment),
        )
