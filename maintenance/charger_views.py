"""The HTTP side chargers use: firmware downloads by signed link, diagnostics uploads by token.

No API key or session: the link or token in the URL is the authorisation.
"""

from __future__ import annotations

import tempfile
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files import File
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from kernel.api_errors import error_body
from maintenance.links import LinkRefused, firmware_download_verify
from maintenance.models import FirmwareFile
from maintenance.services import diagnostics

_CHUNK = 64 * 1024


@require_http_methods(["GET", "HEAD"])
def firmware_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """The firmware file a valid, unexpired link names; 403 otherwise."""
    try:
        firmware_id = firmware_download_verify(token=token)
    except LinkRefused as refused:
        return JsonResponse(error_body("Forbidden", str(refused)), status=403)
    firmware = FirmwareFile.objects.filter(pk=firmware_id).first()
    if firmware is None:
        return JsonResponse(error_body("NotFound", "The firmware file no longer exists."), status=404)
    name = PurePosixPath(firmware.file.name or "").name
    return FileResponse(firmware.file.open("rb"), as_attachment=True, filename=name)


@csrf_exempt
@require_http_methods(["POST", "PUT"])
def diagnostics_upload(request: HttpRequest, token: str, file_name: str = "") -> HttpResponse:
    """Take a charger's upload (multipart form file, or the raw body) for a single-use token.

    403 for an unknown, expired or used token; 413 above ``CSMS_DIAGNOSTICS_MAX_BYTES``.
    """
    limit = settings.CSMS_DIAGNOSTICS_MAX_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
        return JsonResponse(error_body("RequestTooLarge", f"Uploads are limited to {limit} bytes."), status=413)
    if request.content_type == "multipart/form-data":
        files = list(request.FILES.values())
        if not files:
            return JsonResponse(error_body("ValidationError", "The form carries no file."), status=400)
        upload: File = files[0]  # type: ignore[assignment]  # the stubs allow a list; values() gives files
        file_name = file_name or upload.name or ""
        return _received(token, upload, file_name)
    with tempfile.TemporaryFile() as spool:
        size = 0
        while chunk := request.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                return JsonResponse(error_body("RequestTooLarge", f"Uploads are limited to {limit} bytes."), status=413)
            spool.write(chunk)
        spool.seek(0)
        return _received(token, File(spool, name=file_name or "upload"), file_name)


def _received(token: str, upload: File, file_name: str) -> HttpResponse:
    try:
        record = diagnostics.log_upload_receive(token=token, upload=upload, file_name=file_name)
    except LinkRefused as refused:
        return JsonResponse(error_body("Forbidden", str(refused)), status=403)
    return JsonResponse({"log_upload_id": record.pk, "file_name": record.file_name, "size": record.size}, status=201)
