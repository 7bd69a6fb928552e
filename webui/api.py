"""The REST API under /api (FastAPI). Errors are JSON `{"error": {"code", "message"}}`."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from webui.studio import Studio


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException):
        return error(exc.status_code, f"http_{exc.status_code}", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        return error(422, "invalid_request", "; ".join(e["msg"] for e in exc.errors()))


def router(studio: Studio) -> APIRouter:
    api = APIRouter(prefix="/api")

    @api.get("/health")
    def health() -> dict:
        """Liveness: the model, the data and the database are loaded."""
        return {
            "status": "ok",
            "model": str(studio.model_dir),
            "family": studio.vlm.family,
            "people": len(studio.dataset),
            "adapters": len(studio.adapter_rows()),
            "database": studio.db.dialect,
        }

    return api
