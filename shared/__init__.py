"""The seam between the MCP server and the authorization server: settings, storage, token validation.

This package imports neither `mcp_server` nor `auth_server`.
"""
