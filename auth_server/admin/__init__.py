"""The admin surface: an HTTP API on the authorization server (`api.py`) over what an administrator
may do (`service.py`), protected by admin tokens of its own (`credentials.py`), and the CLI that
calls it (`cli.py`, `python -m auth_server admin ...`). docs/operations.md, "The admin surface"."""
