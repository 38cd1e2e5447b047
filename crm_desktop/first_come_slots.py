"""Slots held at most N at a time, each freed slot handed to whoever has waited longest (adapters and sandbox)."""

from __future__ import annotations

import asyncio
from collections import deque


class FirstComeSlots:
    """At most ``limit`` holders at once; a freed slot goes straight to the first still waiting.

    A slot freed while others wait is never seen free, so a newcomer cannot take it ahead of them. A waiter
    cancelled as the slot reaches it passes the slot on; one cancelled before leaves the queue. Usable as
    ``async with slots:`` or through :meth:`take` and :meth:`give_back`.

    Attributes:
        limit: holders at most.
        taken: slots held now.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def take(self) -> None:
        """Wait for a slot."""
        if self.taken < self.limit and not self._waiting:
            self.taken += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Handed the slot just as it was cancelled: pass it on.
                self.give_back()
            elif future in self._waiting:
                # Not yet passed over by a holder giving back (one that did skips a cancelled waiter).
                self._waiting.remove(future)
            raise

    def give_back(self) -> None:
        """Free a slot: to the first waiter still waiting, else back to the pool."""
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.taken = max(0, self.taken - 1)

    async def __aenter__(self) -> None:
        await self.take()

    async def __aexit__(self, *exc_info: object) -> None:
        self.give_back()
