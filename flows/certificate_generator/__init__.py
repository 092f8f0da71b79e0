"""certificate-generator: signed PDF certificates, their registry rows, AUDIT and notification.

Declared in :mod:`flows.certificate_generator.flow` (``SPEC``).
"""
