"""HTTP API of Streamit (FastAPI): stream catalogue routes, JSON schemas and problem-JSON errors."""

from streamit.api.application import DOCS_URL, OPENAPI_URL, create_api_app
from streamit.api.problems import install_error_handlers, problem_response
from streamit.api.routes import API_PREFIX, create_api_router
from streamit.api.schemas import StreamOut, playback_url, stream_out

__all__ = [
    "API_PREFIX",
    "DOCS_URL",
    "OPENAPI_URL",
    "StreamOut",
    "create_api_app",
    "create_api_router",
    "install_error_handlers",
    "playback_url",
    "problem_response",
    "stream_out",
]
