"""An OAuth 2.1 authorization server for MCP clients, mountable in-process or run standalone.

Imports `shared` only, never `mcp_server`.
"""
