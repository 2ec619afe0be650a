"""The HTTP side chargers use: firmware downloads by signed link, diagnostics uploads by token.

No API key or session: the link or token in the URL is the authorisation.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any, Literal

from django.conf import settings
from django.core.files import File
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from kernel.api_errors import error_body
from kernel.request_bodies import FORM_ROOM
from maintenance.errors import MaintenanceError
from maintenance.links import LinkRefused, firmware_download_verify
from maintenance.models import FirmwareFile
from maintenance.services import diagnostics
from maintenance.services.firmware import firmware_image_open

_CHUNK = 64 * 1024


@require_http_methods(["GET", "HEAD"])
def firmware_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """The firmware file a valid, unexpired link names, or the one byte range asked of it (a
    download resumed: 206, ``If-Range`` with its ETag, the SHA-256); 403 for a bad link, 404
    ``NotFound`` for an image deleted or whose stored file is no longer there."""
    try:
        firmware_id = firmware_download_verify(token=token)
    except LinkRefused as refused:
        return JsonResponse(error_body("Forbidden", str(refused)), status=403)
    firmware = FirmwareFile.objects.filter(pk=firmware_id).first()
    if firmware is None:
        return JsonResponse(error_body("NotFound", "The firmware file no longer exists."), status=404)
    try:
        opened = firmware_image_open(firmware=firmware)
    except MaintenanceError as error:
        return JsonResponse(error_body(error.code, str(error)), status=error.http_status)
    name = PurePosixPath(firmware.file.name or "").name
    etag = f'"{firmware.sha256}"'
    if_range = request.headers.get("If-Range")
    wanted = _byte_range(request.headers.get("Range", ""), firmware.size) if if_range in (None, etag) else None
    if wanted == "unsatisfiable":
        opened.close()
        response: HttpResponseBase = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{firmware.size}"
    elif wanted is None:
        response = FileResponse(opened, as_attachment=True, filename=name)
    else:
        start, end = wanted
        response = StreamingHttpResponse(
            _FilePart(opened, start, end - start + 1),
            status=206,
            content_type="application/octet-stream",
        )
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{firmware.size}"
        response["Content-Disposition"] = content_disposition_header(True, name)  # as FileResponse's, RFC 6266
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    return response


_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


def _byte_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """The one byte range ``header`` asks of a file of ``size`` bytes (first and last, inclusive;
    RFC 9110 14.1.2, 14.2), ``unsatisfiable`` (416), or None for the whole file: no Range, one
    that does not parse, or several ranges (a server may answer those with the whole file)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or not any(match.groups()):
        return None
    first, last = match.groups()
    if not first:  # the last ``last`` bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
    return "unsatisfiable" if start >= size or end < start else (start, end)


class _FilePart:
    """``length`` bytes of the open ``file`` from ``start``, in chunks; the file closed with the
    response (``close``, which Django calls when done or dropped; a HEAD reads none)."""

    def __init__(self, file: File, start: int, length: int) -> None:
        self.file, self.start, self.length = file, start, length

    def __iter__(self) -> Iterator[bytes]:
        self.file.seek(self.start)
        length = self.length
        while length > 0 and (chunk := self.file.read(min(_CHUNK, length))):
            length -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.file.close()


# RFC 9110 §14.5: a PUT with a Content-Range is a part of a file sent as if it were all of it, answered
# 400. Stored as the whole upload it spent the single-use token, and the rest of the file was refused 403.
_PARTIAL = (
    "Content-Range: this endpoint takes a whole file in one request, not a part of one; nothing was stored"
    " and the upload URL is still valid."
)
_CONTENT_RANGE = re.compile(r"bytes +([0-9]+)-([0-9]+)/([0-9]+)")


def _a_part(content_range: str | None) -> bool:
    """Whether a ``Content-Range`` says the body is a part of a file: any range but the whole of a
    file of known length (``bytes 0-99/100``, which some HTTP clients send with every upload)."""
    if content_range is None:
        return False
    match = _CONTENT_RANGE.fullmatch(content_range.strip())
    return match is None or int(match[1]) != 0 or int(match[2]) + 1 != int(match[3])


@csrf_exempt
@require_http_methods(["POST", "PUT"])
def diagnostics_upload(request: HttpRequest, token: str, file_name: str = "") -> HttpResponse:
    """Take a charger's upload (multipart form file, POST or PUT, or the raw body) for a single-use token.

    403 for an unknown, expired or used token; 413 for a file above ``CSMS_DIAGNOSTICS_MAX_BYTES``
    (a form's own lines beside it not counted: ``FORM_ROOM``); 400 for a part of a file
    (``Content-Range``, ``_PARTIAL``), the token left unspent.
    """
    if _a_part(request.headers.get("Content-Range")):
        return JsonResponse(error_body("ValidationError", _PARTIAL), status=400)
    multipart = request.content_type == "multipart/form-data"
    bound = settings.CSMS_DIAGNOSTICS_MAX_BYTES + (FORM_ROOM if multipart else 0)
    if int(request.META.get("CONTENT_LENGTH") or 0) > bound:
        return _too_large()
    if multipart and request.META.get("CONTENT_LENGTH") and request.method == "POST":
        return _form_received(token, list(request.FILES.values()), file_name)
    with tempfile.TemporaryFile() as spool:
        size = 0
        while chunk := request.read(_CHUNK):
            size += len(chunk)
            if size > bound:
                return _too_large()
            spool.write(chunk)
        spool.seek(0)
        if multipart:  # sent chunked, or PUT: Django parses the form of a POST with its length alone
            meta = {**request.META, "CONTENT_LENGTH": str(size)}
            try:
                _, files = MultiPartParser(meta, spool, request.upload_handlers, request.encoding).parse()
            except MultiPartParserError as error:
                return JsonResponse(error_body("ValidationError", f"The form cannot be read: {error}"), status=400)
            return _form_received(token, list(files.values()), file_name)
        return _received(token, File(spool, name=file_name or "upload"), file_name)


def _too_large() -> HttpResponse:
    limit = settings.CSMS_DIAGNOSTICS_MAX_BYTES
    return JsonResponse(error_body("RequestTooLarge", f"Uploads are limited to {limit} bytes."), status=413)


def _form_received(token: str, files: list[Any], file_name: str) -> HttpResponse:
    """The first file of a multipart form, named by the URL, else by the form; 413 above
    ``CSMS_DIAGNOSTICS_MAX_BYTES`` (the form around it may be up to ``FORM_ROOM`` more)."""
    if not files:
        return JsonResponse(error_body("ValidationError", "The form carries no file."), status=400)
    upload: File = files[0]
    if upload.size is not None and upload.size > settings.CSMS_DIAGNOSTICS_MAX_BYTES:
        return _too_large()
    return _received(token, upload, file_name or upload.name or "")


def _received(token: str, upload: File, file_name: str) -> HttpResponse:
    try:
        record = diagnostics.log_upload_receive(token=token, upload=upload, file_name=file_name)
    except LinkRefused as refused:
        return JsonResponse(error_body("Forbidden", str(refused)), status=403)
    return JsonResponse({"log_upload_id": record.pk, "file_name": record.file_name, "size": record.size}, status=201)
