"""How the admin writes dates and times: one ISO-like format in UTC, ``2026-11-30 14:05:09 UTC``,
in list columns, detail pages, the dashboard and the meter chart alike (``FORMAT_MODULE_PATH``).
Django's English formats ("Nov. 30, 2026, 2:05 p.m.") would otherwise answer for ``en-us``.
Inputs keep Django's English input formats, whose first ones are the same (``2026-11-30``,
``14:05:09``)."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = DATE_FORMAT
TIME_FORMAT = "H:i:s"
YEAR_MONTH_FORMAT = "Y-m"
# The admin's date hierarchy names a day by it: the full date, as everywhere else.
MONTH_DAY_FORMAT = "Y-m-d"
