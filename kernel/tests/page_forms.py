"""What a browser posts for an admin page's form: every field as the page shows it (hidden inputs
included), for tests that submit a page as an operator would after changing some of it."""

from __future__ import annotations

from html.parser import HTMLParser


class _FormReader(HTMLParser):
    """The named fields of the page's ``<form id=...>``: inputs (checkboxes only when ticked, "on"
    for one without a value, as a browser posts it), the selected option of each select (else its
    first), the text of each textarea."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.inside = attributes.get("id") == self.form_id
        name = attributes.get("name")
        if not self.inside or (tag != "option" and not name):
            return
        if tag == "input" and attributes.get("type") not in ("submit", "button", "file"):
            checkable = attributes.get("type") in ("checkbox", "radio")
            if not checkable or "checked" in attributes:  # a ticked box without a value posts "on"
                self.data[str(name)] = attributes.get("value") or ("on" if checkable else "")
        elif tag == "select":
            self._select = str(name)
        elif tag == "option" and self._select is not None:
            if self._select not in self.data or "selected" in attributes:
                self.data[self._select] = attributes.get("value") or ""
        elif tag == "textarea":
            self._textarea = str(name)
            self.data[self._textarea] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.data[self._textarea] += data.removeprefix("\n") if not self.data[self._textarea] else data


def form_as_posted(page: str, form_id: str, **changes: str) -> dict[str, str]:
    """The fields a browser posts for ``form_id`` on ``page`` (HTML) once ``changes`` are typed in."""
    reader = _FormReader(form_id)
    reader.feed(page)
    return {**reader.data, **changes, "_save": "Save"}
