"""TokenValidator implementations: RFC 7662 introspection, RFC 9068 JWTs, static API keys, a chain.

Each one turns a bearer credential into a `shared.validation.Principal` or raises
`TokenRejected` / `ValidatorUnavailable`. A validator that does not recognise a credential at
all raises `TokenRejected("malformed")`, which is what lets `ChainValidator` ask the next one.
"""
