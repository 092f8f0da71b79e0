"""lernflow dataflows: one package per Sunbird job (``logic.py`` pure rules, ``flow.py`` wiring)."""
