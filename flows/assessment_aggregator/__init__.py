"""assessment-aggregator: Sunbird's ``AssessmentAggregatorJob`` as a Bytewax dataflow.

``logic`` holds the pure rules (parsing, scoring, best-score aggregation, certificate request);
the flow module does the Kafka, Redis, Cassandra and HTTP I/O around them.
"""
