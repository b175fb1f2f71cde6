"""How long a client is asked to wait (`Retry-After`, in seconds) when we cannot answer now.

Every 503 of both servers takes its value from here, so an operator who wants clients to back
off longer changes one line. (A 429 says when its own window ends, computed where it is counted.)
"""

from __future__ import annotations

UNAVAILABLE = 5  # a dependency is down: the Store, the authorization server, an identity provider
BUSY = 2  # busy right now (sign-ins being checked, an account lookup failed): soon is likely fine
