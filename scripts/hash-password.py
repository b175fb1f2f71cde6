"""Prints a password hash for AUTH_USERS (the format `auth_server.users` verifies).

Usage:
    .venv/bin/python scripts/hash-password.py            # asks for the password twice
    printf '%s' "$PASSWORD" | .venv/bin/python scripts/hash-password.py --stdin

Then, for example: AUTH_USERS='{"alice": "<printed hash>"}'. The hash is argon2id with OWASP's
parameters (19 MiB, 2 passes, 1 lane); --memory-kib and --time-cost raise them (never below
OWASP's minimum). Use one cost for every user: the server checks unknown names at the cost most
users have, so a user hashed at another cost can be told from an unknown name by timing. The
password is never echoed, logged or passed on the command line (where other users could read it
from the process list).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth_server.users import ARGON2_MEMORY_KIB, ARGON2_MIN_WORK, ARGON2_TIME_COST, hash_password


def main() -> int:
    parser = argparse.ArgumentParser(description="Hash a password for AUTH_USERS (argon2id).")
    parser.add_argument("--stdin", action="store_true", help="read the password from standard input")
    parser.add_argument(
        "--memory-kib",
        type=int,
        default=ARGON2_MEMORY_KIB,
        help=f"memory per hash, KiB (default {ARGON2_MEMORY_KIB})",
    )
    parser.add_argument(
        "--time-cost", type=int, default=ARGON2_TIME_COST, help=f"passes (default {ARGON2_TIME_COST})"
    )
    args = parser.parse_args()
    if args.time_cost < 1 or args.memory_kib * args.time_cost < ARGON2_MIN_WORK:
        parser.error(f"memory-kib x time-cost must be at least {ARGON2_MIN_WORK} (OWASP's minimum)")

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
    print(hash_password(password, memory_kib=args.memory_kib, time_cost=args.time_cost))
    return 0


if __name__ == "__main__":
    sys.exit(main())
