"""user-cache-updater: the Redis user cache (DB 12, ``user:<id>``) from AUDIT events.

Declared in :mod:`flows.user_cache_updater.flow` (``SPEC``).
"""
