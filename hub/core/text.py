"""What a string from a caller may hold. PostgreSQL's text and jsonb cannot store U+0000, so
an API string that is stored or searched refuses NUL at the door: a 400 naming the field, on
every backend, and the OpenAPI schema says so."""

from __future__ import annotations

from typing import Annotated

import msgspec

NO_NUL = r"^[^\x00]*$"

Text = Annotated[str, msgspec.Meta(pattern=NO_NUL)]
