"""``python -m lernflow.cli``: the same as the ``lernflow`` command."""

from lernflow.cli import main

main()
