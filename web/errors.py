"""API errors: one JSON body shape, the portal's own refusals, and the handlers that shape them."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, default_exceptions

from geth_private.errors import ChainError, ChainUnavailable
from marketplace.errors import MarketError

CHAIN_DOWN_MESSAGE = "the chain node is not answering; try again shortly"
CHAIN_RETRY_S = 5
# What a request meets when the node is gone (geth_private.provider turns requests' own
# connection errors into it).
CHAIN_DOWN = (ChainUnavailable,)


def error_response(status: int, message: str, kind: str | None = None, **extra: Any) -> Response:
    """The API's error body, {"error": message, "kind": kind, …extra}, with its status."""
    if kind is None:
        known = default_exceptions.get(status)
        kind = known.__name__ if known else "Error"
    response = jsonify(error=message, kind=kind, **extra)
    response.status_code = status
    return response


def wants_json() -> bool:
    """Whether this request is an API call (answered in JSON) rather than a page."""
    return request.path.startswith("/api/")


class PortalError(Exception):
    """Base error of the web layer: a refusal of the portal's own, shown to the user."""

    status = 400

    def __init__(self, message: str, kind: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.kind = kind or type(self).__name__
        self.extra = extra
        self.headers: dict[str, str] = {}


class NotLoggedIn(PortalError):
    """An API call that needs a signed-in session, from a session without one."""

    status = 401

    def __init__(self) -> None:
        super().__init__("log in first")


class CsrfRefused(PortalError):
    """A state-changing request without the session's CSRF token."""

    status = 403

    def __init__(self) -> None:
        super().__init__(
            "this request lacks the page's security token (CSRF); reload the page and retry"
        )


class LoginRefused(PortalError):
    """The market turned a sign-in down (not a participant, registration pending)."""

    status = 403


class SignatureRefused(PortalError):
    """A sign-in message that does not check out: signer, domain, nonce or time (a 401)."""

    status = 401


class RateLimited(PortalError):
    """Too many requests of one kind from one client lately: it must wait."""

    status = 429

    def __init__(self, seconds: int) -> None:
        super().__init__(f"too many attempts from your address: wait {seconds} s and retry",
                         retry_after_s=seconds)
        self.headers["Retry-After"] = str(seconds)


def register(app: Flask) -> None:
    """Answer every error in the portal's shape: JSON for the API, a sentence for pages."""

    @app.errorhandler(PortalError)
    def portal_error(err: PortalError) -> Response:
        response = error_response(err.status, str(err), err.kind, **err.extra)
        response.headers.update(err.headers)
        return response

    @app.errorhandler(MarketError)
    def market_error(err: MarketError) -> Response:
        return error_response(err.status, str(err), type(err).__name__)

    def chain_down(err: Exception) -> Response:
        # Nothing was accepted yet when a chain read fails: the client retries as it is told.
        app.logger.warning("chain node not answering on %s: %s", request.path, err)
        if not wants_json():
            return Response(CHAIN_DOWN_MESSAGE.capitalize() + ".", 503,
                            {"Retry-After": str(CHAIN_RETRY_S)}, mimetype="text/plain")
        response = error_response(503, CHAIN_DOWN_MESSAGE, "ChainUnavailable",
                                  retry_after_s=CHAIN_RETRY_S)
        response.headers["Retry-After"] = str(CHAIN_RETRY_S)
        return response

    for kind in CHAIN_DOWN:
        app.register_error_handler(kind, chain_down)

    @app.errorhandler(ChainError)
    def chain_error(err: ChainError) -> Response:
        app.logger.warning("chain error on %s: %s", request.path, err)
        return error_response(502, f"the chain did not answer as expected: {err}",
                              type(err).__name__)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> HTTPException | Response:
        if not wants_json():
            return err
        return error_response(err.code, err.description, type(err).__name__)

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> Response | tuple[str, int]:
        # A person gets a sentence, never a traceback; the log keeps the details.
        app.logger.exception("unexpected error on %s", request.path)
        if wants_json():
            return error_response(500, "internal error; the portal log has the details",
                                  "InternalError")
        return "Internal error; the portal log has the details.", 500
