"""DPoP (RFC 9449): proofs of possession, checked in one place for the token endpoint and /mcp.

A DPoP client holds a key pair and signs a short JWT, the proof, for every request it makes: the
authorization server binds the tokens it issues to the proof's key (`cnf.jkt`, the key's RFC 7638
thumbprint), and the MCP server accepts such a token only together with a fresh proof by the same
key, so a stolen token is useless without the private key. One module per concern of the RFC:

- `proof`: section 4, the proof JWT checked against the request it came with (`ProofVerifier`);
- `target`: section 4.3 step 9, the `htu` compared after RFC 3986 normalisation;
- `nonces`: sections 8 and 9, server-provided nonces (DPOP_NONCE=required);
- `replay`: section 11.1, each proof used once, across instances when the Store is Redis;
- `signatures`: the signature checks of one event-loop turn, run back to back (speed only).

The authorization server's side (binding codes and tokens) is in `auth_server/dpop.py`, the
resource server's (schemes, challenges) in `mcp_server/protection/dpop.py`.
"""

from shared.dpop.proof import ProofRejected, ProofVerifier, VerifiedProof, access_token_hash

__all__ = ["ProofRejected", "ProofVerifier", "VerifiedProof", "access_token_hash"]
