"""The sign-in routes of the page: `POST /auth/sign-in`, `POST /auth/sign-out`, `GET /auth/me`.

The page's sign-in button posts the name and password here with `fetch` (see
`webui.signin_bar`); the answer sets the session cookie: HttpOnly (page scripts, and so an
injected script, cannot read it), SameSite=Strict (no other site's page sends it), Secure when
the page is served over https, no Max-Age (it ends with the browser; the server-side session
expires on its own after `CAGUL_SESSION_HOURS`). Errors use the API's JSON shape.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from storage.limits import MAX_PASSWORD_CHARS, MAX_USER_NAME_CHARS
from webui.auth import COOKIE, AuthError, ThrottledError, from_request, open_session, sign_in
from webui.auth import sign_out as end_session
from webui.studio import Studio


class SignedInOut(BaseModel):
    """Who the session cookie now belongs to."""

    name: str
    role: str


class SignedOutOut(BaseModel):
    signed_out: bool = Field(description="whether a session was open and is now revoked")


class SignInIn(BaseModel):
    name: str = Field(max_length=MAX_USER_NAME_CHARS)
    password: str = Field(max_length=MAX_PASSWORD_CHARS)


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        status_code=status, headers=headers, content={"error": {"code": code, "message": message}}
    )


def client_address(request: Request) -> str | None:
    """The peer address the server saw (a proxy's own headers are not trusted)."""
    return request.client.host if request.client else None


def router(studio: Studio) -> APIRouter:
    auth = APIRouter(prefix="/auth")

    @auth.post("/sign-in", response_model=SignedInOut)
    def post_sign_in(body: SignInIn, request: Request) -> JSONResponse:
        """Check the password (throttled) and start a session in the cookie."""
        try:
            who = sign_in(studio.db, body.name, body.password, client=client_address(request))
        except ThrottledError as e:
            return _error(429, "too_many_attempts", str(e), **{"Retry-After": str(e.retry_after_s)})
        except AuthError as e:
            return _error(401, "unauthorized", str(e))
        end_session(studio.db, request.cookies.get(COOKIE))  # a previous user's session ends
        token = open_session(studio.db, who)
        out = JSONResponse({"name": who.name, "role": who.role})
        # Behind a proxy that ends TLS the app sees http: CAGUL_COOKIE_SECURE=1 says https.
        secure = request.url.scheme == "https" or os.environ.get("CAGUL_COOKIE_SECURE") == "1"
        out.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/", secure=secure)
        return out

    @auth.post("/sign-out", response_model=SignedOutOut)
    def post_sign_out(request: Request) -> JSONResponse:
        """Revoke the cookie's session on the server and clear the cookie."""
        who = end_session(studio.db, request.cookies.get(COOKIE))
        out = JSONResponse({"signed_out": who is not None})
        out.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return out

    @auth.get("/me", response_model=SignedInOut)
    def get_me(request: Request) -> JSONResponse:
        """The signed-in user of the session cookie (401 without one)."""
        who = from_request(studio.db, request)
        if who is None:
            return _error(401, "unauthorized", "not signed in")
        return JSONResponse({"name": who.name, "role": who.role})

    return auth
