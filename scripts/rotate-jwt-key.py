"""Rotates the JWT signing key kept in the Store (JWT_SIGNING_KEYS unset): a new key signs from
now on, the old one stays published for ACCESS_TOKEN_TTL seconds. Reads the same settings as the
servers (environment and .env), so run it where they run:

    .venv/bin/python scripts/rotate-jwt-key.py

Running instances pick the new key up within a minute (or at once on an unknown `kid`).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth_server.signing_keys import SigningKeys
from shared.settings import load_settings
from shared.storage.factory import open_store


async def main() -> None:
    settings = load_settings()
    if not settings.redis_url:
        raise SystemExit("REDIS_URL is unset: in-memory keys live in the server process, restart it instead")
    store = open_store(settings)
    try:
        kid = await SigningKeys(settings, store).rotate()
    finally:
        await store.close()
    print(f"new signing key: {kid}")


if __name__ == "__main__":
    asyncio.run(main())
