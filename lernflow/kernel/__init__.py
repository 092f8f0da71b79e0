"""The kernel every layer above uses: errors, retry, metrics, logs, dead-letter envelopes,
clients (Kafka, Cassandra and Redis executors), shutdown, and the Java/Gson compatibility
helpers (``java``) Sunbird's byte-exact outputs need.

It imports only :mod:`config` (see docs/architecture.md).
"""
