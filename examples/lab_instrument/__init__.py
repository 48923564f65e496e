"""A lab-instrument driver template, served with ``phyll serve`` (see driver.py)."""
