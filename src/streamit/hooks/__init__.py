"""Publish hooks compatible with nginx-rtmp: outgoing callbacks, JSON webhooks and request signing.

* :class:`PublishCallbacks` — ``on_publish`` / ``on_update`` / ``on_publish_done`` HTTP callbacks that allow,
  rename or refuse a publish, exactly like nginx-rtmp's notify module.
* :class:`WebhookDispatcher` — signed ``stream.live`` / ``stream.ended`` JSON events, queued and retried
  in the background.
* :mod:`streamit.hooks.signing` — the ``X-Streamit-Signature`` / ``X-Streamit-Timestamp`` headers.

The incoming side (nginx-rtmp calling Streamit) lives in :mod:`streamit.api.hooks`.
"""

from streamit.hooks.callbacks import (
    HookDecision,
    PublishCall,
    PublishCallbacks,
    publish_done_form,
    publish_form,
    update_form,
)
from streamit.hooks.nginx_form import encode_form, parse_form
from streamit.hooks.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    signature_headers,
    verify_signature,
)
from streamit.hooks.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    STREAM_ENDED,
    STREAM_LIVE,
    WebhookDispatcher,
    WebhookStats,
    stream_event_data,
)

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "STREAM_ENDED",
    "STREAM_LIVE",
    "TIMESTAMP_HEADER",
    "HookDecision",
    "PublishCall",
    "PublishCallbacks",
    "WebhookDispatcher",
    "WebhookStats",
    "compute_signature",
    "encode_form",
    "parse_form",
    "publish_done_form",
    "publish_form",
    "signature_headers",
    "stream_event_data",
    "update_form",
    "verify_signature",
]
