"""Outputs of lernflow flows: Kafka, Cassandra, Redis; every sink is idempotent and batched."""
