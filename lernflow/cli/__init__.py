"""The ``lernflow`` command: run flows, manage the local stack and the schema.

Every command reads the same settings (``lernflow config show``); ``LERNFLOW_ENV`` picks the
topic prefix. The app is assembled in ``lernflow.cli.app``, one module per command group.
"""

from __future__ import annotations

from lernflow.cli.app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
