"""The API's error envelope: one exception type carrying the JSON code and the HTTP status.

Codes are stable numbers a script can branch on (0 is success, as in the seed
service); the HTTP status says the same thing to generic tools (curl -f, proxies).
"""
from __future__ import annotations

import enum

from ..errors import M2fpError


class ApiCode(enum.IntEnum):
    SUCCESS = 0
    BAD_REQUEST = 1000  # a malformed body
    NOT_MULTIPART = 1006  # the body is not multipart/form-data
    MISSING_FIELD = 1001  # no multipart field ``image``
    NOT_AN_IMAGE = 1002  # the bytes are no image at all, or a JPEG/PNG that does not decode
    UNSUPPORTED_FORMAT = 1003  # an image, but not JPEG or PNG
    TOO_LARGE = 1004  # upload bytes or pixel count above the limit
    BAD_OPTION = 1005  # keep / background / threshold invalid
    FORBIDDEN_HOST = 1403  # a loopback-only server reached under another host name (DNS rebinding)
    FORBIDDEN_ORIGIN = 1406  # a POST from a page of another origin (a cross-site form)
    NOT_FOUND = 1404
    METHOD_NOT_ALLOWED = 1405
    BUSY = 1503  # too many parses waiting for the shared engine
    ENGINE_FAILURE = 2000  # the engine raised on this image
    INTERNAL = 2001  # a bug in this server


#: HTTP status for each code.
HTTP_STATUS: dict[ApiCode, int] = {
    ApiCode.SUCCESS: 200,
    ApiCode.BAD_REQUEST: 400,
    ApiCode.NOT_MULTIPART: 415,
    ApiCode.MISSING_FIELD: 400,
    ApiCode.NOT_AN_IMAGE: 400,
    ApiCode.UNSUPPORTED_FORMAT: 415,
    ApiCode.TOO_LARGE: 413,
    ApiCode.BAD_OPTION: 400,
    ApiCode.FORBIDDEN_HOST: 403,
    ApiCode.FORBIDDEN_ORIGIN: 403,
    ApiCode.NOT_FOUND: 404,
    ApiCode.METHOD_NOT_ALLOWED: 405,
    ApiCode.BUSY: 503,
    ApiCode.ENGINE_FAILURE: 500,
    ApiCode.INTERNAL: 500,
}


class ApiError(M2fpError):
    """Raised anywhere below the WSGI app; the app turns it into the JSON envelope."""

    def __init__(self, code: ApiCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_json(self) -> dict:
        return {"code": int(self.code), "message": self.message, "error": self.code.name.lower(), "data": None}
