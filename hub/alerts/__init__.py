"""Alerts: key, sync, deadline and webhook conditions that reach the right people."""
