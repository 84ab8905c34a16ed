"""Webhooks: tenants' receiver endpoints, signed (Standard Webhooks) and retried delivery."""
