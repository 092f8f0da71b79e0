"""activity-aggregate-updater: course progress, completion and the certificate trigger.

Declared in :mod:`flows.activity_aggregate_updater.flow` (``SPEC``).
"""
