import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csms.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up)

from csms.http_handler import OneHopAsgiHandler, daphne_form_parsing_off  # noqa: E402
from kernel.daphne_server import daphne_input_queue_install  # noqa: E402
from kernel.log_format import route_daphne_access_log  # noqa: E402
from ocpp_gateway.routing import websocket_urlpatterns  # noqa: E402

route_daphne_access_log()
daphne_form_parsing_off()
daphne_input_queue_install()
django_asgi_app = OneHopAsgiHandler()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
