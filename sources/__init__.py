"""Inputs of lernflow flows."""
