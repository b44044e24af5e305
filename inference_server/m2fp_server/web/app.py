"""The WSGI application: the page, its static files, ``GET /api/info`` and ``POST /api/parse``.

Werkzeug does the HTTP work (routing, the streaming multipart parser with its
size limits, static files from the package); this module only maps requests to
:class:`ParseService` calls and every failure to the JSON envelope
``{"code", "message", "data"}`` with a matching HTTP status.
"""
from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from importlib import resources
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .. import __version__
from .errors import ApiCode, ApiError
from .parsing import ParseService

log = logging.getLogger(__name__)

MAX_FORM_PARTS = 16
MAX_FIELD_BYTES = 1024 * 1024  # text fields are short; this also bounds the parser's buffer (> its 64 KiB chunks)

STATIC_PACKAGE = (__package__ or "m2fp_server.web", "static")

#: The page loads only its own script, style and the images it builds (data:/blob: URLs).
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    r = Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json",
                 headers=headers)
    r.headers["Cache-Control"] = "no-store"
    return r


def _error(err: ApiError, headers: dict[str, str] | None = None) -> Response:
    return _json(err.to_json(), err.status, headers)


def same_origin(origin: str, host_header: str) -> bool:
    """Does an Origin header (scheme://host[:port]) name this server's own Host?

    A form on another site can make a browser POST here (no CORS preflight for forms);
    its Origin then names that site, so such a request is refused before any inference.
    """
    o = origin.strip().lower()
    if o == "null":
        return False
    scheme, sep, rest = o.partition("://")
    return bool(sep) and scheme in ("http", "https") and rest.rstrip("/") == host_header.strip().lower()


def is_loopback_host(host_header: str) -> bool:
    """Is an HTTP Host header (name[:port]) a loopback name or address?"""
    host = host_header.strip().lower()
    if host.startswith("["):  # [v6]:port
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebApp:
    def __init__(self, service: ParseService, loopback_only: bool = True) -> None:
        """``loopback_only``: answer only requests addressed to a loopback host name, so a web
        page cannot reach this server through DNS rebinding (a name of its own resolving to
        127.0.0.1) and read the replies."""
        self.service = service
        self.loopback_only = loopback_only
        self.url_map = Map([
            Rule("/", endpoint="index", methods=["GET"]),
            Rule("/api/info", endpoint="info", methods=["GET"]),
            Rule("/api/parse", endpoint="parse", methods=["POST"]),
        ])
        self._wsgi = SharedDataMiddleware(self._dispatch, {"/static": STATIC_PACKAGE}, cache=False)

    def __call__(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        try:
            request = Request(environ)
            host = request.host
            if self.loopback_only and not is_loopback_host(host):
                err = ApiError(ApiCode.FORBIDDEN_HOST, f"this server answers only on loopback names, not "
                                                       f"{host!r}; open it as http://127.0.0.1:PORT/")
                return _error(err)(environ, start_response)
            origin = request.headers.get("Origin")
            if request.method == "POST" and origin is not None and not same_origin(origin, host):
                err = ApiError(ApiCode.FORBIDDEN_ORIGIN, f"a page from {origin[:100]!r} may not post to this "
                                                         "server; use the page it serves itself")
                return _error(err)(environ, start_response)
            if "\x00" in request.path:
                raise NotFound()
            return self._wsgi(environ, start_response)
        except NotFound:
            return _error(ApiError(ApiCode.NOT_FOUND, "no such page or API"))(environ, start_response)
        except Exception:  # the envelope even for a bug before dispatch (a static file lookup, a header)
            log.exception("internal error before dispatch")
            return _error(ApiError(ApiCode.INTERNAL, "internal server error (see the server log)"))(
                environ, start_response)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = self.service.limits.max_upload_bytes
        # text fields are short; this also bounds the parser's buffer, so keep it above its 64 KiB chunks
        request.max_form_memory_size = MAX_FIELD_BYTES
        request.max_form_parts = MAX_FORM_PARTS
        try:
            endpoint, _ = self.url_map.bind_to_environ(environ).match()
            response = getattr(self, f"on_{endpoint}")(request)
        except ApiError as err:
            response = _error(err)
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.valid_methods or []))
            response = _error(ApiError(ApiCode.METHOD_NOT_ALLOWED,
                                       f"{request.method} is not allowed on {request.path}; use {allowed}"),
                              {"Allow": allowed})
        except NotFound:
            response = _error(ApiError(ApiCode.NOT_FOUND, f"no such page or API: {request.path}"))
        except RequestEntityTooLarge as exc:
            response = _error(self._too_large(exc, request))
        except HTTPException as exc:
            response = _error(ApiError(ApiCode.BAD_REQUEST, exc.description or exc.name))
        except Exception:  # a bug here must still answer in the envelope
            log.exception("internal error on %s %s", request.method, request.path)
            response = _error(ApiError(ApiCode.INTERNAL, "internal server error (see the server log)"))
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response(environ, start_response)

    def _too_large(self, exc: BaseException | None = None, request: Request | None = None) -> ApiError:
        """The right message per limit: Werkzeug raises the same bare exception for the body size, the
        number of parts and a text field's memory, so the raising frame tells which one it was."""
        mb = self.service.limits.max_upload_bytes / (1024 * 1024)
        if request is not None and (request.content_length or 0) > self.service.limits.max_upload_bytes:
            return ApiError(ApiCode.TOO_LARGE, f"the upload is larger than the {mb:g} MiB limit")
        tb = exc.__traceback__ if exc is not None else None
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        raiser = tb.tb_frame.f_locals.get("self") if tb is not None else None
        if raiser is not None and getattr(raiser, "max_parts", None) is not None and \
                getattr(raiser, "_parts_decoded", 0) > raiser.max_parts:
            return ApiError(ApiCode.TOO_LARGE, f"the form has more than {MAX_FORM_PARTS} parts")
        if request is not None:
            return ApiError(ApiCode.TOO_LARGE, f"a text field is larger than {MAX_FIELD_BYTES // 1024} KiB")
        return ApiError(ApiCode.TOO_LARGE, f"the upload is larger than the {mb:g} MiB limit")

    # ------------------------------------------------------------------ endpoints
    def on_index(self, request: Request) -> Response:
        page = resources.files(STATIC_PACKAGE[0]).joinpath("static", "index.html").read_bytes()
        r = Response(page, mimetype="text/html")
        r.headers["Content-Security-Policy"] = PAGE_CSP
        r.headers["Cache-Control"] = "no-cache"
        return r

    def on_info(self, request: Request) -> Response:
        return _json({"code": 0, "message": "success", "data": {"server_version": __version__,
                                                                  **self.service.info()}})

    def on_parse(self, request: Request) -> Response:
        if request.mimetype != "multipart/form-data":
            raise ApiError(ApiCode.NOT_MULTIPART,
                           "send a multipart/form-data body with the photo in the field 'image' "
                           f"(got Content-Type {request.mimetype or 'none'!r})")
        try:
            files, form = request.files, request.form
        except RequestEntityTooLarge as exc:
            raise self._too_large(exc, request) from None
        upload = files.get("image")
        if upload is None:
            hint = " (it was sent as text: attach it as a file)" if "image" in form else ""
            raise ApiError(ApiCode.MISSING_FIELD, f"missing the multipart file field 'image'{hint}")
        bg_upload = files.get("background_image")
        bg = None
        if bg_upload is not None and bg_upload.filename != "":  # a browser sends an empty part when unset
            bg = bg_upload.read()
        data = self.service.parse_form(upload.read(), form, bg)
        return _json({"code": 0, "message": "success", "data": data})
