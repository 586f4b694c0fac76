"""dsn.py: the DSN extension's parameters (RFC 3461) and the "delivered" report (RFC 3464);
lmtptext.decode_xtext, which it shares with ORCPT's X-Original-To."""
import email
import email.policy

import pytest

from vdeliver import dsn, lmtptext


@pytest.mark.parametrize("value, wanted", [
    pytest.param("abc", "abc", id="plain"),
    pytest.param("a+2Bb+3D", "a+b=", id="escapes"),
    pytest.param("a+2bb", "a+b", id="lower-case hex"),
    pytest.param("", "", id="empty"),
])
def test_decode_xtext(value, wanted):
    assert lmtptext.decode_xtext(value, strict=True) == wanted


@pytest.mark.parametrize("value", [
    pytest.param("a=b", id="equals"),
    pytest.param("a b", id="space"),
    pytest.param("a+2", id="truncated escape"),
    pytest.param("a+ZZ", id="not hex"),
    pytest.param("a\x01", id="control"),
    pytest.param("jos\u00e9", id="not ASCII"),
])
def test_decode_xtext_refuses(value):
    with pytest.raises(ValueError):
        lmtptext.decode_xtext(value, strict=True)
    assert lmtptext.decode_xtext(value) == value  # not strict (ORCPT's header): kept


def test_ret_envid_notify():
    assert dsn.parse_ret("hdrs") == "HDRS" and dsn.parse_ret("FULL") == "FULL"
    assert dsn.parse_envid("QQ+2B1") == "QQ+1"
    assert dsn.parse_notify("NEVER") == frozenset()
    assert dsn.parse_notify("success,Failure,DELAY") == {"SUCCESS", "FAILURE", "DELAY"}
    for bad in ("", "NEVER,SUCCESS", "SUCCESS,", "SOMETIMES"):
        with pytest.raises(ValueError):
            dsn.parse_notify(bad)
    for bad in ("", "x" * 101, "a=b"):
        with pytest.raises(ValueError):
            dsn.parse_envid(bad)
    with pytest.raises(ValueError):
        dsn.parse_ret("BODY")


def chunks(*parts):
    return iter([*parts, b""]).__next__


@pytest.mark.parametrize("parts, wanted", [
    pytest.param((b"Subject: a\nFrom: b\n\nbody\n",), b"Subject: a\nFrom: b\n", id="one chunk"),
    pytest.param((b"Subject: a\n", b"\nbody",), b"Subject: a\n", id="blank line in the next chunk"),
    pytest.param((b"Subject: a\nFrom: b",), b"Subject: a\n", id="no body, no last line end"),
    pytest.param((b"\nbody only\n",), b"", id="no header"),
])
def test_header_block(parts, wanted):
    assert dsn.header_block(chunks(*parts)) == wanted


def test_header_block_is_bounded():
    huge = b"X-Long: " + b"x" * 100 + b"\n"
    block = dsn.header_block(chunks(*[huge] * 2000))
    assert len(block) <= dsn.MAX_HEADERS and block.endswith(b"\n") and block.startswith(b"X-Long")


def test_report_says_delivered_and_carries_headers_not_the_body():
    notice = dsn.Notice("ENV-1", "rfc822;Orig+2B1@example.com", "mx.example.com",
                        chunks(b"Subject: hello\nMessage-ID: <m1@x>\n\nsecret body\n"), 1_700_000_000)
    data = dsn.compose(notice, "sender@example.net", "bob@example.com")
    report = email.message_from_bytes(data, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert b"\nTo: <sender@example.net>\n" in data and report["Auto-Submitted"] == "auto-replied"
    text, status, headers = report.iter_parts()
    assert "<bob@example.com>: delivered to mailbox" in text.get_content()
    assert status.get_content_type() == "message/delivery-status"
    body = data.decode()
    assert "Reporting-MTA: dns; mx.example.com\nOriginal-Envelope-Id: ENV-1\n" in body
    assert ("Final-Recipient: rfc822; bob@example.com\nOriginal-Recipient: rfc822; Orig+1@example.com\n"
            "Action: delivered\nStatus: 2.0.0\n") in body
    assert headers.get_content_type() == "text/rfc822-headers"
    assert b"Subject: hello\nMessage-ID: <m1@x>\n" in data and b"secret body" not in data


def test_report_fields_cannot_be_injected():
    notice = dsn.Notice("E\r\nBcc: x@evil", "rfc822;a@b", "mx\nX-Evil: 1", chunks(b"S: 1\n\n"), 0)
    data = dsn.compose(notice, "s@x\r\nBcc: victim@evil", "r@y\nAction: failed")
    assert b"\nBcc:" not in data and b"\nX-Evil" not in data and b"\nAction: failed" not in data
    assert data.count(b"\nAction: delivered\n") == 1
