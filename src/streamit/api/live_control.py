"""What the API needs from the live side of Streamit: kicking a publisher off a stream."""

from __future__ import annotations

from typing import Protocol


class LiveControl(Protocol):
    """Control over publishers connected to this deployment (implemented by the ingest service)."""

    async def disconnect(self, stream_id: str, reason: str) -> None:
        """Disconnect the publisher of ``stream_id``, if any (after its key was rotated, or on delete)."""
        ...
