"""Fault tests: the sender under hostile servers and its own bugs, every test bounded in time."""
