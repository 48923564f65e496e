"""Runnable examples (tests/test_examples.py runs each at a small size)."""
