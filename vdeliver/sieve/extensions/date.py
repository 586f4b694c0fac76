"""RFC 5260 date and currentdate tests with :zone / :originalzone and the date
parts year month day date julian hour minute second time iso8601 std11 zone weekday.

Without :zone or :originalzone a date is shown in the local time zone (RFC 5260
§4.1; settings["timezone"] as "+HHMM" overrides it). currentdate reads
settings["current_time"] (an aware datetime) when given, else the clock.
Never: raise on an unparsable Date header (it simply has no value).
"""
import datetime
import re

from .. import match, registry
from ..registry import STRING, STRINGS, TagSpec
from .core import header_values


PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time",
         "iso8601", "std11", "zone", "weekday")
_ZONE = re.compile(r"([+-])([0-9]{2})([0-9]{2})")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_zone(z):
    """A :zone argument "+HHMM"/"-HHMM" -> offset in minutes, or None."""
    m = _ZONE.fullmatch(z.strip())
    if m is None:
        return None
    h, mi = int(m.group(2)), int(m.group(3))
    if h > 23 or mi > 59:
        return None
    return -(h * 60 + mi) if m.group(1) == "-" else h * 60 + mi


def _zone_str(off):
    sign = "-" if off < 0 else "+"
    return f"{sign}{abs(off) // 60:02d}{abs(off) % 60:02d}"


def date_part(when, part):
    """when = (naive datetime in its zone, zone offset in minutes)."""
    dt, off = when
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
        z = _zone_str(off)
        z = "Z" if off == 0 else f"{z[:3]}:{z[3:]}"
        return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{z}"
    if part == "std11":
        return f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year:04d} " \
               f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {_zone_str(off)}"
    if part == "zone":
        return _zone_str(off)
    if part == "weekday":
        return str((dt.weekday() + 1) % 7)
    return None


def local_offset(run, utc):
    """The local zone's offset (minutes) at the UTC instant `utc` (naive)."""
    z = run.settings.get("timezone")
    off = parse_zone(z) if isinstance(z, str) else None
    if off is not None:
        return off
    aware = utc.replace(tzinfo=datetime.timezone.utc).astimezone()
    return int(aware.utcoffset().total_seconds()) // 60


# RFC 822 military zones as Dovecot reads them (A = +0100 ... Z = UTC)
_MILITARY = {c: (i + 1) * 60 for i, c in enumerate("ABCDEFGHI")}
_MILITARY.update({c: (i + 10) * 60 for i, c in enumerate("KLM")})
_MILITARY.update({c: -(i + 1) * 60 for i, c in enumerate("NOPQRSTUVWXY")})
_MILITARY["Z"] = 0


def parse_date(value):
    """An RFC 5322 date -> (naive datetime, offset minutes), or None. Offsets up to
    +/-99:59 are kept as written (Pigeonhole shows "+2400")."""
    import email.utils              # on first use: it pulls in socket and friends
    value = value.strip()
    head, _, last = value.rpartition(" ")
    military = _MILITARY.get(last.upper()) if len(last) == 1 and head else None
    try:
        t = email.utils.parsedate_tz(head + " +0000" if military is not None else value)
    except (TypeError, ValueError, IndexError):
        return None
    if t is None:
        return None
    off = military if military is not None else (t[9] or 0) // 60
    try:
        dt = datetime.datetime(t[0], t[1], t[2], t[3], t[4], min(t[5], 59))
    except (ValueError, OverflowError):
        return None
    return dt, off


def _convert(run, node, when):
    if node.tags.get("originalzone"):
        return when
    dt, off = when
    try:
        utc = dt - datetime.timedelta(minutes=off)
        zone = node.tags.get("zone")
        if zone is not None:
            zoff = parse_zone(run.expand(zone))
            if zoff is None:
                return when            # an invalid zone leaves the date as it is (RFC 5260 §4.1)
        else:
            zoff = local_offset(run, utc)
        return utc + datetime.timedelta(minutes=zoff), zoff
    except OverflowError:
        return when


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
        when = parse_date(raw)
        if when is not None:
            values.append(date_part(_convert(run, node, when), part))
    return match.match(run, node.match, values, node.args[2])


def _currentdate(run, node):
    now = run.settings.get("current_time") or datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is not None:
        now = now.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    part = run.expand(node.args[0]).lower()
    if part not in PARTS:
        return False
    return match.match(run, node.match, [date_part(_convert(run, node, (now, 0)), part)], node.args[1])


_zone_tags = {"zone": TagSpec("zone", "date", arg=STRING, group="zone"),
              "originalzone": TagSpec("originalzone", "date", group="zone")}
registry.test("date", extension="date", positional=(STRING, STRING, STRINGS), comparator=True, match=True,
              tags=dict(_zone_tags), run=_date, check=lambda v, n: _check_part(v, n, n.args[1]))
registry.test("currentdate", extension="date", positional=(STRING, STRINGS), comparator=True, match=True,
              tags={"zone": _zone_tags["zone"]}, run=_currentdate,
              check=lambda v, n: _check_part(v, n, n.args[0]))
