"""Prometheus figures: the requests a process answered, and the platform's state."""
