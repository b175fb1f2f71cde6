"""Prints a password hash for AUTH_USERS (the format `auth_server.users` verifies).

Usage:
    .venv/bin/python scripts/hash-password.py            # asks for the password twice
    printf '%s' "$PASSWORD" | .venv/bin/python scripts/hash-password.py --stdin

Then, for example: AUTH_USERS='{"alice": "<printed hash>"}'. The password is never echoed,
logged or passed on the command line (where other users could read it from the process list).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth_server.users import DEFAULT_N, hash_password


def main() -> int:
    parser = argparse.ArgumentParser(description="Hash a password for AUTH_USERS.")
    parser.add_argument("--stdin", action="store_true", help="read the password from standard input")
    parser.add_argument(
        "--cost", type=int, default=DEFAULT_N, help=f"scrypt n (power of two, default {DEFAULT_N})"
    )
    args = parser.parse_args()
    if args.cost < 2 or args.cost & (args.cost - 1):
        parser.error("--cost must be a power of two")

    if args.stdin:
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("The passwords differ.", file=sys.stderr)
            return 1
    if not password:
        print("An empty password is not allowed.", file=sys.stderr)
        return 1
    print(hash_password(password, n=args.cost))
    return 0


if __name__ == "__main__":
    sys.exit(main())
