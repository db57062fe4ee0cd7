"""Websocket connection registry and topic fan-out."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import deque
from dataclasses import dataclass
from dataclasses import field

from aiohttp import WSCloseCode
from aiohttp import web

#: Private topics and the category-scoped variants Bybit also accepts.
PRIVATE_TOPICS = ("order", "execution", "execution.fast", "position", "wallet", "greeks", "dcp")


def dumps(msg: dict) -> str:
    return json.dumps(msg, separators=(",", ":"))


@dataclass(eq=False)
class WsConn:
    """One accepted websocket: ``kind`` is ``public``, ``private`` or ``trade``."""

    kind: str
    category: str
    ws: web.WebSocketResponse
    conn_id: str = field(default_factory=lambda: f"emu-{uuid.uuid4().hex[:16]}")
    topics: set[str] = field(default_factory=set)
    authed: bool = False
    api_key: str | None = None

    async def send(self, msg: dict) -> None:
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.ws.send_str(dumps(msg))


class Hub:
    """Tracks live websocket connections and delivers pushes to subscribers."""

    def __init__(self) -> None:
        self.conns: set[WsConn] = set()
        self.received: deque[tuple[str, dict]] = deque(maxlen=5000)
        self.accepted = 0

    def add(self, conn: WsConn) -> None:
        self.conns.add(conn)
        self.accepted += 1

    def discard(self, conn: WsConn) -> None:
        self.conns.discard(conn)

    def count(self, kind: str | None = None) -> int:
        return sum(1 for c in self.conns if (kind is None or c.kind == kind) and not c.ws.closed)

    def public_topics(self, category: str = "linear") -> set[str]:
        out: set[str] = set()
        for conn in self.conns:
            if conn.kind == "public" and conn.category == category:
                out |= conn.topics
        return out

    async def publish_public(self, category: str, topic: str, msg: dict) -> None:
        for conn in list(self.conns):
            if conn.kind == "public" and conn.category == category and topic in conn.topics:
                await conn.send(msg)

    async def publish_private(self, topic: str, item: dict, now_ms: int) -> None:
        """Send one private ``data`` item to every authenticated subscriber of ``topic``."""
        for conn in list(self.conns):
            if conn.kind != "private" or not conn.authed:
                continue
            for name in (topic, f"{topic}.linear"):
                if name in conn.topics:
                    await conn.send(
                        {
                            "id": f"{uuid.uuid4().hex[:12]}-{now_ms}",
                            "topic": name,
                            "creationTime": now_ms,
                            "data": [item],
                        }
                    )

    async def close_all(self, kind: str | None = None) -> int:
        """Close connections from the server side (as Bybit does on maintenance)."""
        doomed = [c for c in self.conns if kind is None or c.kind == kind]
        for conn in doomed:
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server closing")
        return len(doomed)
