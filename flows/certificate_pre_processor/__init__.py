"""certificate-pre-processor: generate-certificate requests for the eligible learners of a batch.

Declared in :mod:`flows.certificate_pre_processor.flow` (``SPEC``).
"""
