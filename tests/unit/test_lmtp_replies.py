"""lmtptext.py's LMTP table: the reply of each error class, and the fixed replies' shape."""
import re

import pytest

from vdeliver import errors, lmtptext


@pytest.mark.parametrize("error, wanted", [
    pytest.param(errors.UnknownUser(), "550 5.1.1 user unknown", id="unknown user"),
    pytest.param(errors.BadRecipientAddress("x"), "550 5.1.3 bad recipient address syntax",
                 id="bad recipient"),
    pytest.param(errors.BadSenderAddress("x"), "501 5.1.7 bad sender address syntax",
                 id="bad sender at MAIL"),
    pytest.param(errors.MailboxFull("/m/bob 10/5"), "552 5.2.2 mailbox full",
                 id="mailbox full bounce keeps its detail private"),
    pytest.param(errors.DeliveryError(status="5.2.3"), "552 5.2.3 temporary failure",
                 id="message too big for the mailbox"),
    pytest.param(errors.DeliveryError(status="5.3.4"), "552 5.3.4 temporary failure",
                 id="message too big"),
    pytest.param(errors.MailLoop("x"), "554 5.4.6 mail forwarding loop", id="loop"),
    pytest.param(errors.SieveReject("Not\r\nwanted."), "550 5.7.1 Not wanted.", id="sieve reject"),
    pytest.param(errors.Bounce(), "554 5.3.0 delivery failed", id="other bounce"),
    pytest.param(errors.MailSystemFull("d"), "452 4.3.1 mail system full", id="disk full"),
    pytest.param(errors.MailboxFullDeferred(), "452 4.2.2 mailbox full", id="mailbox full deferred"),
    pytest.param(errors.TemporaryFailure(status="4.5.3"), "452 4.5.3 temporary failure",
                 id="too many recipients"),
    pytest.param(errors.TableError("t"), "451 4.3.0 temporary lookup failure", id="table"),
    pytest.param(errors.ConfigError("c"), "451 4.3.5 mail system configuration error",
                 id="configuration"),
    pytest.param(errors.MailboxUnavailable("m"), "451 4.2.0 mailbox temporarily unavailable",
                 id="mailbox unavailable"),
])
def test_lmtp_reply(error, wanted):
    assert lmtptext.lmtp_reply(error) == wanted


REPLY = re.compile(r"(\d)\d\d (?:(\d)\.\d{1,3}\.\d{1,3} )?\S.*")


@pytest.mark.parametrize("name", sorted(lmtptext.LMTP_REPLIES))
def test_fixed_replies_have_matching_code_and_status(name):
    text = lmtptext.LMTP_REPLIES[name]
    match = REPLY.fullmatch(text)
    assert match, text
    code, status = match.groups()
    if name not in ("greeting", "start data"):  # RFC 2034: 220 and 354 carry no status
        assert status == code, text  # RFC 3463: the status class is the reply's class
