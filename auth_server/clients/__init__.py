"""Every client the authorization server knows, and how a client proves who it is.

registry.py        the client registry: configured (AUTH_CLIENTS), registered (RFC 7591) and
                   metadata-document (CIMD) clients, and the ones an administrator disabled
metadata.py        the client metadata rules every way of becoming known goes through
documents.py       client ID metadata documents: a URL client_id fetched, checked and cached
fetch.py           fetching a document from a URL an attacker chose, without becoming a proxy
authentication.py  client authentication at /token, /introspect and /revoke
"""
