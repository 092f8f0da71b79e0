"""lernflow package."""
