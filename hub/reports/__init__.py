"""Reports for compliance staff: complaint resolution timeliness per contract."""
