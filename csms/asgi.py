import gc
import os

# No cyclic collection while the application is imported: the import allocates hundreds of
# thousands of container objects, and the collector's passes over them were an eighth of a worker's
# start-up, which a reconnect storm waits for (issue 15). The import's unreachable cycles (about
# 4,000 objects) are frozen below with the rest, once per process: a full collection to free them
# first costs 0.1-0.2 s of the same start-up.
_collecting = gc.isenabled()
gc.disable()
try:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csms.settings")
    django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application

    from channels.routing import ProtocolTypeRouter, URLRouter  # needs Django set up
    from django.urls import get_resolver

    from csms.http_handler import OneHopAsgiHandler, daphne_form_parsing_off
    from kernel.daphne_server import daphne_server_install
    from kernel.log_format import route_daphne_access_log
    from ocpp_gateway.routing import websocket_urlpatterns

    route_daphne_access_log()
    daphne_form_parsing_off()
    daphne_server_install()
    django_asgi_app = OneHopAsgiHandler()
    # The URLconf (and every view, serializer and admin it imports) now, before daphne listens: Django
    # imports it lazily at the first request, which in a reconnect storm blocked the event loop for
    # seconds while handshakes queued (28 % of the first 20 s, issue 15).
    get_resolver().url_patterns  # noqa: B018  (loads the URLconf)
    # What is loaded by now (modules, the URLconf, settings) lives as long as the process: out of the
    # garbage collector's generations, a full collection no longer walks it (one took 0.11 s in an API
    # process, about 4 % of its CPU in a command round trip benchmark; issue 15).
    gc.freeze()
finally:  # a failed import (a test's, a shell's) leaves the collector as it found it
    if _collecting:
        gc.enable()
# The collector's first generation is collected after 20,000 new container objects, not 700: a
# message allocates hundreds (frames, dicts, model instances, dataclasses), nearly all freed by
# their reference counts, so the default collected the young objects every few dozen messages and
# moved survivors on to full collections that walk every connection's objects (6.5 % of the
# server's CPU over a 1,000-charger fleet run, 0.8 % with these; issue 15). Cycles still go, later.
gc.set_threshold(20_000, 20, 10)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
