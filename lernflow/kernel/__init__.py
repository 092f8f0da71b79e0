"""The kernel every layer above uses: errors, retry, metrics, logs, dead-letter envelopes, clients.

It imports only :mod:`config` (see docs/architecture.md).
"""
