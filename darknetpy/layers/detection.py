"""Placeholder: filled in by its family's implementation."""
