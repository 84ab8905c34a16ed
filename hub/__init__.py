"""CTM Hub: a multi-tenant vault, sync and casework service for the CMS HPMS CTM API."""

__version__ = "0.1.0"
