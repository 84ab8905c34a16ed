"""The CTM gateway: hub tokens that act with an HPMS key for its designees, and a CTM-shaped
pass-through to CMS that takes them instead of the key's secret (CTM-API.md section 2)."""
