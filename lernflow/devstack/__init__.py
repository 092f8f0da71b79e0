"""The local development stack (Kafka, Cassandra, Redis, PostgreSQL) and the demo."""
