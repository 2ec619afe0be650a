import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csms.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up)

from kernel.daphne_server import daphne_input_queue_install  # noqa: E402
from kernel.log_format import route_daphne_access_log  # noqa: E402
from ocpp_gateway.routing import websocket_urlpatterns  # noqa: E402

route_daphne_access_log()
daphne_input_queue_install()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
