"""/api/docs served with no network: Swagger UI's files come from the `swagger-ui-bundle`
package (installed with the app, pinned in requirements.txt) and are served under
/api/docs/assets, instead of FastAPI's default page, which loads them from a CDN and is blank
offline."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/api/docs"
ASSETS_URL = "/api/docs/assets"


def install_docs(app: FastAPI, openapi_url: str = "/api/openapi.json") -> None:
    """Serve Swagger UI at DOCS_URL from the local bundle (create the app with docs_url=None)."""
    import swagger_ui_bundle

    app.mount(
        ASSETS_URL,
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="swagger-ui-assets",
    )

    @app.get(DOCS_URL, include_in_schema=False, response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title}: REST API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        )
