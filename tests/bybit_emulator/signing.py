"""Bybit v5 request signing (HMAC-SHA256), used both to verify and to build signed requests.

REST: ``X-BAPI-SIGN = hex(HMAC_SHA256(secret, timestamp + api_key + recv_window + payload))``
where ``payload`` is the raw query string (GET) or the raw body (POST).

Websocket auth: ``{"op": "auth", "args": [api_key, expires_ms, hex(HMAC_SHA256(secret,
"GET/realtime" + expires_ms))]}``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

TEST_API_KEY = "EMULATORTESTKEY01"
TEST_API_SECRET = "emulator-test-secret-0123456789abcdef"


@dataclass(frozen=True)
class Credentials:
    """An API key/secret pair."""

    api_key: str = TEST_API_KEY
    api_secret: str = TEST_API_SECRET


def hmac_hex(secret: str, message: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``message`` keyed by ``secret``."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def rest_origin_string(api_key: str, timestamp: str, recv_window: str, payload: str) -> str:
    """Return the string Bybit signs for a REST request."""
    return f"{timestamp}{api_key}{recv_window}{payload}"


def sign_rest(secret: str, api_key: str, timestamp: str, recv_window: str, payload: str) -> str:
    """Return the ``X-BAPI-SIGN`` value for a REST request."""
    return hmac_hex(secret, rest_origin_string(api_key, timestamp, recv_window, payload))


def sign_ws_auth(secret: str, expires_ms: int) -> str:
    """Return the websocket auth signature for ``expires_ms``."""
    return hmac_hex(secret, f"GET/realtime{expires_ms}")


def rest_headers(
    creds: Credentials,
    payload: str,
    *,
    recv_window: int = 5000,
    timestamp_ms: int | None = None,
) -> dict[str, str]:
    """Build the signed headers a Bybit REST client sends (for tests and tools)."""
    ts = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    rw = str(recv_window)
    return {
        "X-BAPI-API-KEY": creds.api_key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": rw,
        "X-BAPI-SIGN": sign_rest(creds.api_secret, creds.api_key, ts, rw, payload),
    }


def ws_auth_message(creds: Credentials, expires_ms: int | None = None) -> dict:
    """Build the websocket ``auth`` op message (for tests and tools)."""
    expires = expires_ms if expires_ms is not None else int(time.time() * 1000) + 10_000
    return {"op": "auth", "args": [creds.api_key, expires, sign_ws_auth(creds.api_secret, expires)]}
