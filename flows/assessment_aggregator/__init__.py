"""assessment-aggregator: Sunbird's assessment scores, attempts and certificate trigger.

Declared in :mod:`flows.assessment_aggregator.flow` (``SPEC``).
"""
