"""relation-cache-updater: course leaf nodes, optional nodes and ancestors in Redis.

Declared in :mod:`flows.relation_cache_updater.flow` (``SPEC``).
"""
