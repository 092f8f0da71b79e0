"""Operations tools: run, status, replay, failed events, schema, certificate and cache tools.

They sit above the flows and reports they operate (see docs/architecture.md).
"""
