"""RFC 5260 date and currentdate tests with :zone / :originalzone and the date
parts year month day date julian hour minute second time iso8601 std11 zone weekday.

Without :zone or :originalzone a date is shown in the local time zone (RFC 5260
§4.1; settings["timezone"] as "+HHMM" overrides it). currentdate reads
settings["current_time"] (an aware datetime) when given, else the clock.
Never: raise on an unparsable Date header (it simply has no value).
"""
import datetime
import email.utils
import re

from .. import match, registry
from ..registry import STRING, STRINGS, TagSpec
from .core import header_values, select_index  # noqa: F401

registry.capability("date")

PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time",
         "iso8601", "std11", "zone", "weekday")
_ZONE = re.compile(r"([+-])([0-9]{2})([0-9]{2})")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_zone(z):
    m = _ZONE.fullmatch(z.strip())
    if m is None:
        return None
    h, mi = int(m.group(2)), int(m.group(3))
    if h > 23 or mi > 59:
        return None
    off = datetime.timedelta(hours=h, minutes=mi)
    return datetime.timezone(-off if m.group(1) == "-" else off)


def _zone_str(dt):
    off = dt.utcoffset() or datetime.timedelta(0)
    sign = "-" if off < datetime.timedelta(0) else "+"
    mins = abs(int(off.total_seconds())) // 60
    return f"{sign}{mins // 60:02d}{mins % 60:02d}"


def date_part(dt, part):
    if part == "year":
        return f"{dt.year:04d}"
    if part == "month":
        return f"{dt.month:02d}"
    if part == "day":
        return f"{dt.day:02d}"
    if part == "date":
        return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"
    if part == "julian":
        return str(dt.date().toordinal() - datetime.date(1858, 11, 17).toordinal())
    if part == "hour":
        return f"{dt.hour:02d}"
    if part == "minute":
        return f"{dt.minute:02d}"
    if part == "second":
        return f"{dt.second:02d}"
    if part == "time":
        return f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if part == "iso8601":
        z = _zone_str(dt)
        z = "Z" if z == "+0000" else f"{z[:3]}:{z[3:]}"
        return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{z}"
    if part == "std11":
        return f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year:04d} " \
               f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {_zone_str(dt)}"
    if part == "zone":
        return _zone_str(dt)
    if part == "weekday":
        return str((dt.weekday() + 1) % 7)
    return None


def local_zone(run):
    z = run.settings.get("timezone")
    tz = parse_zone(z) if isinstance(z, str) else None
    return tz or datetime.datetime.now().astimezone().tzinfo


def parse_date(value):
    try:
        t = email.utils.parsedate_tz(value)
    except (TypeError, ValueError, IndexError):
        return None
    if t is None:
        return None
    try:
        off = t[9] or 0
        dt = datetime.datetime(t[0], t[1], t[2], t[3], t[4], min(t[5], 59),
                               tzinfo=datetime.timezone(datetime.timedelta(seconds=off)))
    except (ValueError, OverflowError):
        return None
    return dt


def _convert(run, node, dt):
    if node.tags.get("originalzone"):
        return dt
    zone = node.tags.get("zone")
    if zone is not None:
        tz = parse_zone(run.expand(zone))
        return dt.astimezone(tz) if tz is not None else dt   # invalid zone: left unchanged (RFC 5260 §4.1)
    return dt.astimezone(local_zone(run))


def _check_part(v, node, part):
    # Pigeonhole only warns: the test is then false / the zone is ignored
    if type(part) is str and part.lower() not in PARTS:
        v.warn(node.line, f"specified date part '{part}' is not known")
    zone = node.tags.get("zone")
    if type(zone) is str and parse_zone(zone) is None:
        v.warn(node.line, f"specified :zone argument '{zone}' is not a valid timezone")


def _date(run, node):
    part = run.expand(node.args[1]).lower()
    if part not in PARTS:
        return False
    received = run.expand(node.args[0]).lower() == "received"
    values = []
    for raw in header_values(run, node, [node.args[0]]):
        if received:
            raw = raw.rpartition(";")[2]          # RFC 5260 §4.1: the date after the last ";"
        dt = parse_date(raw)
        if dt is not None:
            values.append(date_part(_convert(run, node, dt), part))
    return match.match(run, node.match, values, node.args[2])


def _currentdate(run, node):
    now = run.settings.get("current_time") or datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)
    part = run.expand(node.args[0]).lower()
    if part not in PARTS:
        return False
    return match.match(run, node.match, [date_part(_convert(run, node, now), part)], node.args[1])


_zone_tags = {"zone": TagSpec("zone", "date", arg=STRING, group="zone"),
              "originalzone": TagSpec("originalzone", "date", group="zone")}
registry.test("date", extension="date", positional=(STRING, STRING, STRINGS), comparator=True, match=True,
              tags=dict(_zone_tags), run=_date, check=lambda v, n: _check_part(v, n, n.args[1]))
registry.test("currentdate", extension="date", positional=(STRING, STRINGS), comparator=True, match=True,
              tags={"zone": _zone_tags["zone"]}, run=_currentdate,
              check=lambda v, n: _check_part(v, n, n.args[0]))
