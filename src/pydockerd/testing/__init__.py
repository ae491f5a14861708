"""Test fixtures that ship with the project: offline test images (`images`).

Nothing in the daemon imports this package; tests/ and bench/ do.
"""
