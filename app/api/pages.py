"""What every HTML page is served with, and the API docs page (/docs) served from installed files.

The wall screens carry the read token in their URL (`?token=`), so no request a page makes may send that
URL on as a Referer; the pages run only their own files, and no other site may frame them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(tags=["docs"])

# Swagger UI keeps its icons in data: URIs in its stylesheet; nothing else is needed from anywhere but
# the service. React sets styles through the DOM, which style-src does not govern.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
NOSNIFF = {"X-Content-Type-Options": "nosniff"}
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    **NOSNIFF,
}
# Screens run for months: they revalidate on every load, so a new release shows after one reload.
NO_CACHE = {"Cache-Control": "no-cache"}

DOCS_DIR = Path(__file__).resolve().parent.parent / "web" / "docs"
# Swagger UI's own files come from the fastapi-offline package (a dependency), not from a CDN.
SWAGGER_DIR = Path(str(files("fastapi_offline") / "static"))
# Only these files are served, so no path from a URL reaches the file system.
DOCS_ASSETS: dict[str, tuple[Path, str]] = {
    "docs.js": (DOCS_DIR / "docs.js", "text/javascript; charset=utf-8"),
    "swagger-ui-bundle.js": (SWAGGER_DIR / "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": (SWAGGER_DIR / "swagger-ui.css", "text/css; charset=utf-8"),
}


def html_page(path: Path) -> FileResponse:
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=NO_CACHE | PAGE_HEADERS)


def page_asset(path: Path, media_type: str) -> FileResponse:
    return FileResponse(path, media_type=media_type, headers=NO_CACHE | NOSNIFF)


@router.get("/docs", include_in_schema=False)
async def docs() -> FileResponse:
    """Swagger UI for this service's OpenAPI document."""
    return html_page(DOCS_DIR / "index.html")


@router.get("/docs/assets/{name}", include_in_schema=False)
async def docs_asset(name: str) -> FileResponse:
    found = DOCS_ASSETS.get(name)
    if found is None:
        raise HTTPException(404, "no such file")
    return page_asset(*found)
