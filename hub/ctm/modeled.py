"""Everything about the CTM API that CTM-API.md calls *modeled*, in one place.

The official CTM guide is behind the HPMS login. These names are our best reading; when a
plan hands us the guide, this module is the one to change (paths, scope, field names, the
upload layout). The client, the parser's upload reader and the simulator all read them here.
"""

from __future__ import annotations

from typing import Final

# Token exchange (section 3): known for HPMS APIs in general; the CTM scope is modeled.
# These are field names and paths, not credentials.
TOKEN_PATH: Final = "/api/idm/OAuth/token"  # noqa: S105
DEFAULT_SCOPE: Final = "ctm"
TOKEN_USER_NAME: Final = "userName"  # noqa: S105
TOKEN_KEY_ID: Final = "keyId"  # noqa: S105
TOKEN_KEY_SECRET: Final = "keySecret"  # noqa: S105
TOKEN_SCOPES: Final = "scopes"  # noqa: S105
TOKEN_ACCESS_TOKEN: Final = "accessToken"  # noqa: S105
TOKEN_EXPIRES: Final = "expires"  # noqa: S105
CONSUMER_ID_HEADER: Final = "X-API-CONSUMER-ID"
INVALID_TOKEN_BODY: Final = {"error": "Invalid Authorization Token"}
# AB2D refreshes at 80 % of the stated lifetime; we do the same.
TOKEN_REFRESH_FRACTION: Final = 0.8

# Download (section 4).
DOWNLOAD_PATH: Final = "/api/ctm/complaints/download"
DOWNLOAD_CONTRACT_PARAM: Final = "contractId"
DOWNLOAD_START_PARAM: Final = "startDate"
DOWNLOAD_END_PARAM: Final = "endDate"
DOWNLOAD_DATE_FORMAT: Final = "%Y-%m-%d"
DOWNLOAD_CONTENT_TYPE: Final = "text/csv"

# Upload (sections 4 and 7).
UPLOAD_PATH: Final = "/api/ctm/casework/upload"
UPLOAD_FILE_FIELD: Final = "file"
UPLOAD_FILE_NAME: Final = "casework.csv"
UPLOAD_ACCEPTED: Final = "accepted"
UPLOAD_REJECTED: Final = "rejected"
UPLOAD_REJECTED_ID: Final = "complaintId"
UPLOAD_REJECTED_ERRORS: Final = "errors"
UPLOAD_COLUMNS: Final = (
    "COMPLAINT_ID",
    "CONTRACT_ID",
    "RESOLUTION_DATE",
    "RESOLUTION_SUMMARY",
    "CMS_PLAN_CASEWORK_NOTES",
    "COMPLAINANT_SATISFIED",
    "RESOLUTION_NOTIFICATION",
)
UPLOAD_DATE_FORMAT: Final = "%m/%d/%Y"
UPLOAD_SUMMARY_MAX_CHARS: Final = 4000
UPLOAD_SATISFIED_VALUES: Final = ("Y", "N", "")
