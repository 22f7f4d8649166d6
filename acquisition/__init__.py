"""Acquisition concern: pypylon camera -> Redis stream ``frames:{line}``."""
