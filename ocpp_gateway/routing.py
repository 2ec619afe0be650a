from django.urls import re_path

from ocpp_gateway.consumers import OcppConsumer, RefusingConsumer

websocket_urlpatterns = [
    re_path(r"^ocpp/(?P<version>1\.6|2\.0\.1)/(?P<charge_point_id>[^/]{1,48})/?$", OcppConsumer.as_asgi()),
    re_path(r"", RefusingConsumer.as_asgi()),
]
