"""HTTP API of Streamit (FastAPI): public and owner stream routes, bearer tokens, JSON schemas, problems."""

from streamit.api.application import DOCS_URL, OPENAPI_URL, create_api_app
from streamit.api.live_control import LiveControl
from streamit.api.problems import install_error_handlers, problem_response
from streamit.api.routes import API_PREFIX, create_api_router
from streamit.api.schemas import OwnerStreamOut, StreamOut, owner_stream_out, playback_url, stream_out

__all__ = [
    "API_PREFIX",
    "DOCS_URL",
    "OPENAPI_URL",
    "LiveControl",
    "OwnerStreamOut",
    "StreamOut",
    "create_api_app",
    "create_api_router",
    "install_error_handlers",
    "owner_stream_out",
    "playback_url",
    "problem_response",
    "stream_out",
]
