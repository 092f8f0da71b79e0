"""Benchmarks: ``python -m bench`` (``make bench``) runs each and prints one table.

Each benchmark module exposes ``run(settings) -> list[Row]``; numbers are measured on the local
stack in the same run, never asserted in tests.
"""
