from django.urls import re_path

from chargepoints.identity import IDENTITY_PATTERN
from ocpp_gateway.consumers import OcppConsumer, RefusingConsumer

# The identity is matched on the percent-decoded path: anything else (a NUL, a space, ".", "..")
# is refused at the handshake by the RefusingConsumer, before any database work.
websocket_urlpatterns = [
    re_path(rf"^ocpp/(?P<version>1\.6|2\.0\.1)/(?P<charge_point_id>{IDENTITY_PATTERN})/?$", OcppConsumer.as_asgi()),
    re_path(r"", RefusingConsumer.as_asgi()),
]
