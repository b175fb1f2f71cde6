"""The MCP resource server: the feature reference on the official SDK, protected by OAuth 2.1."""
