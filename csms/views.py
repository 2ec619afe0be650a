"""Operational endpoints: liveness, readiness, metrics, and the API's schema and docs."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from csms.health import readiness
from kernel import metrics
from kernel.api_errors import JsonErrors
from webhooks.metrics import WebhookBacklogCollector


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving HTTP; nothing else is checked."""
    return JsonResponse({"status": "ok"})


@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the channel layer and the broker answer; 503 naming those that do not."""
    checks = await readiness()
    ready = all(outcome == "ok" for outcome in checks.values())
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of every process on this host (404 with CSMS_METRICS_ENABLED=0)."""
    scrape = metrics.exposition(WebhookBacklogCollector())
    if scrape is None:
        raise Http404("Metrics are disabled (CSMS_METRICS_ENABLED=0).")
    body, content_type = scrape
    return HttpResponse(body, content_type=content_type)


class SchemaView(JsonErrors, SpectacularAPIView):
    """The OpenAPI schema (YAML, or JSON with ``?format=json``); its errors in JSON, as the API's."""


class SchemaDocsView(JsonErrors, SpectacularSwaggerView):
    """The schema's Swagger UI page; its errors in JSON, as the API's."""
