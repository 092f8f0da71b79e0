"""lernflow: Sunbird ED's course-completion, assessment, certificate and cache jobs on Bytewax."""

__version__ = "0.1.0"
