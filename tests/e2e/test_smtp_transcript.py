"""Exact SMTP exchanges with posternd (RFC 5321, 2920, 3030, 1870, 2034)."""
import re
import uuid

from pstlib import HOSTNAME, body_of, dot_stuff, free_port, header_block, message

H = HOSTNAME
EHLO_LINES = [f"250-{H}", "250-PIPELINING", "250-SIZE 26214400", "250-8BITMIME",
              "250-SMTPUTF8", "250-ENHANCEDSTATUSCODES", "250-CHUNKING", "250-DSN",
              "250 STARTTLS"]


def uid():
    return "t" + uuid.uuid4().hex[:16]


def test_greeting(mta):
    c = mta.connect(greet=False)
    assert c.greeting().lines == [f"220 {H} ESMTP postern"]


def test_ehlo_lists_extensions_in_order_with_starttls_last(mta):
    c = mta.connect()
    assert c.cmd("EHLO client.test").lines == EHLO_LINES


def test_ehlo_without_starttls_when_listener_does_not_offer_it(daemon):
    d = daemon(listeners=[{"address": "127.0.0.1", "port": free_port(),
                           "mode": "smtp", "starttls": False}])
    c = d.connect()
    assert c.cmd("EHLO client.test").lines == EHLO_LINES[:-2] + ["250 DSN"]


def test_ehlo_size_shows_configured_limit(daemon):
    d = daemon(limits={"message_size": 12345})
    c = d.connect()
    assert "250-SIZE 12345" in c.cmd("EHLO client.test").lines


def test_helo(mta):
    c = mta.connect()
    assert c.cmd("HELO client.test").lines == [f"250 {H}"]


def test_ehlo_twice_is_allowed(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("EHLO again.test").lines == EHLO_LINES


def test_full_transaction_delivers_to_maildir(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<sender@remote.test>").line == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<alice@example.test>").line == "250 2.1.5 Ok"
    assert c.cmd("DATA").line == "354 End data with <CR><LF>.<CR><LF>"
    s = uid()
    c.send(dot_stuff(message(s, body="Hello Alice.\nSecond line.\n")) + b".\r\n")
    r = c.reply()
    assert re.fullmatch(r"250 2\.0\.0 Ok: queued as [0-9A-F]{24}", r.line), r
    assert c.cmd("QUIT").line == "221 2.0.0 Bye"
    assert c.closed(5)
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert b"\r" not in raw
    head = header_block(raw)
    assert head[0] == "Return-Path: <sender@remote.test>"
    assert re.fullmatch(r"Delivered-To: <?alice@example\.test>?", head[1]), head[1]
    # our Authentication-Results (RFC 8601 5: at the top), then our Received
    assert head[2].startswith("Authentication-Results: "), head[2]
    assert head[3].startswith("Received: "), head[3]
    assert f"Subject: {s}" in head
    assert body_of(raw) == b"Hello Alice.\nSecond line.\n"


def test_received_header_names_us_and_the_client(mta):
    c = mta.connect()
    c.ehlo("client.test")
    s = uid()
    c.transaction("sender@remote.test", ["alice@example.test"], message(s))
    (raw,) = mta.maildir("alice").wait(1, match=s)
    recv = [h for h in header_block(raw) if h.startswith("Received: ")][0]
    assert "client.test" in recv and "127.0.0.1" in recv and H in recv, recv
    assert re.search(r"with ESMTP(?![SA])", recv), recv  # plaintext: not ESMTPS


def test_two_transactions_in_one_session(mta):
    c = mta.connect()
    c.ehlo()
    s1, s2 = uid(), uid()
    id1 = c.transaction("sender@remote.test", ["alice@example.test"], message(s1)).queue_id
    id2 = c.transaction("sender@remote.test", ["alice@example.test"], message(s2)).queue_id
    assert id1 != id2
    mta.maildir("alice").wait(2)
    assert mta.maildir("alice").count(s1) == 1 and mta.maildir("alice").count(s2) == 1


def test_two_recipients_get_one_copy_each(mta):
    c = mta.connect()
    c.ehlo()
    s = uid()
    c.transaction("sender@remote.test", ["alice@example.test", "bob@localhost"], message(s))
    mta.maildir("alice").wait(1, match=s)
    mta.maildir("bob").wait(1, match=s)


def test_null_sender_accepted(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<>").line == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<alice@example.test>").line == "250 2.1.5 Ok"
    assert c.cmd("DATA").code == 354
    s = uid()
    c.send(dot_stuff(message(s)) + b".\r\n")
    assert c.reply().queue_id
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert header_block(raw)[0] == "Return-Path: <>"


def test_mail_with_size_and_body_parameters(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<sender@remote.test> SIZE=1000 BODY=8BITMIME").line == "250 2.1.0 Ok"


def test_smtputf8_address_accepted(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<jürgen@bücher.test> SMTPUTF8").line == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<alice@example.test>").line == "250 2.1.5 Ok"


def test_commands_are_case_insensitive(mta):
    c = mta.connect()
    c.cmd("ehlo client.test")
    assert c.cmd("mail from:<sender@remote.test>").line == "250 2.1.0 Ok"
    assert c.cmd("rcpt to:<alice@example.test>").line == "250 2.1.5 Ok"


def test_recipient_address_is_case_insensitive(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<ALICE@Example.TEST>").line == "250 2.1.5 Ok"


def test_rset_clears_the_transaction(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RSET").line == "250 2.0.0 Ok"
    assert c.cmd("RCPT TO:<alice@example.test>").line == "503 5.5.1 Need MAIL command"
    assert c.cmd("MAIL FROM:<sender@remote.test>").line == "250 2.1.0 Ok"


def test_noop(mta):
    c = mta.connect()
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_help(mta):
    c = mta.connect()
    assert c.cmd("HELP").lines == [
        "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS"]


def test_vrfy_does_not_disclose(mta):
    c = mta.connect()
    c.ehlo()
    want = "252 2.5.0 Cannot verify the user; send mail to try delivery"
    assert c.cmd("VRFY alice").line == want
    assert c.cmd("VRFY nosuchuser").line == want


def test_expn_not_available(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("EXPN staff").line == "502 5.5.1 EXPN not available"


def test_quit_closes(mta):
    c = mta.connect()
    assert c.cmd("QUIT").lines == ["221 2.0.0 Bye"]
    assert c.closed(5)


def test_unknown_command(mta):
    c = mta.connect()
    assert c.cmd("FROBNICATE now").line == "500 5.5.2 Command unrecognized"
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


# -- sequence errors

def test_mail_before_ehlo(mta):
    c = mta.connect()
    assert c.cmd("MAIL FROM:<sender@remote.test>").line == "503 5.5.1 Send HELO/EHLO first"


def test_rcpt_without_mail(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("RCPT TO:<alice@example.test>").line == "503 5.5.1 Need MAIL command"


def test_data_without_rcpt(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("DATA").line == "503 5.5.1 Need RCPT command"


def test_data_when_every_rcpt_was_refused(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<nosuch@example.test>").code == 550
    assert c.cmd("DATA").line == "503 5.5.1 Need RCPT command"


def test_second_mail(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("MAIL FROM:<other@remote.test>").line == "503 5.5.1 Sender already specified"


# -- syntax errors

def test_mail_bad_sender_address(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<not an address>").line.startswith("501 5.1.7 ")


def test_rcpt_bad_recipient_address(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<alice@@example.test>").line.startswith("501 5.1.3 ")


def test_mail_unknown_esmtp_parameter(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("MAIL FROM:<sender@remote.test> FROBNICATE=yes").line.startswith("555 5.5.4 ")


def test_mail_without_colon_is_a_syntax_error(mta):
    c = mta.connect()
    c.ehlo()
    assert c.cmd("MAIL sender@remote.test").line.startswith("501 5.5.4 ")


def test_ehlo_without_domain_is_a_syntax_error(mta):
    c = mta.connect()
    assert c.cmd("EHLO").line.startswith("501 5.5.4 ")


# -- PIPELINING (RFC 2920)

def test_pipelined_group_gets_replies_in_order(mta):
    c = mta.connect()
    c.ehlo()
    c.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
           "RCPT TO:<bob@example.test>\r\nDATA\r\n")
    assert [r.line for r in c.replies(4)] == [
        "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"]
    s = uid()
    c.send(dot_stuff(message(s)) + b".\r\nQUIT\r\n")
    assert c.reply().queue_id
    assert c.reply().line == "221 2.0.0 Bye"
    mta.maildir("alice").wait(1, match=s)
    mta.maildir("bob").wait(1, match=s)


def test_pipelined_group_with_a_refused_recipient(mta):
    c = mta.connect()
    c.ehlo()
    c.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<nosuch@example.test>\r\n"
           "RCPT TO:<alice@example.test>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\n")
    assert [r.line for r in c.replies(5)] == [
        "250 2.1.0 Ok", "550 5.1.1 User unknown", "250 2.1.5 Ok",
        "554 5.7.1 Relay access denied", "354 End data with <CR><LF>.<CR><LF>"]
    s = uid()
    c.send(dot_stuff(message(s)) + b".\r\n")
    assert c.reply().queue_id
    mta.maildir("alice").wait(1, match=s)


def test_pipelined_ehlo_through_quit_in_one_write(mta):
    c = mta.connect()
    s = uid()
    c.send(b"EHLO client.test\r\nMAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
           b"DATA\r\n")
    assert c.reply().lines == EHLO_LINES
    assert [r.code for r in c.replies(3)] == [250, 250, 354]
    c.send(dot_stuff(message(s)) + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    assert c.reply().queue_id
    assert [r.line for r in c.replies(3)] == ["250 2.0.0 Ok", "250 2.0.0 Ok", "221 2.0.0 Bye"]
    mta.maildir("alice").wait(1, match=s)


# -- CHUNKING (RFC 3030)

def bdat(c, data, last=False):
    if isinstance(data, str):
        data = data.encode()
    c.send(f"BDAT {len(data)}{' LAST' if last else ''}\r\n".encode() + data)
    return c.reply()


def crlf(text):
    return text.replace("\n", "\r\n").encode()


def test_bdat_single_last_chunk(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    s = uid()
    r = bdat(c, crlf(message(s, body="one chunk\n")), last=True)
    assert re.fullmatch(r"250 2\.0\.0 Ok: queued as [0-9A-F]{24}", r.line), r
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert body_of(raw) == b"one chunk\n"


def test_bdat_several_chunks(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    s = uid()
    data = crlf(message(s, body="first part\nsecond part\nthird part\n"))
    a, b = data[:50], data[50:90]
    assert bdat(c, a).line == f"250 2.0.0 {len(a)} bytes received"
    # <n> is not pinned down as chunk or running total: accept both
    assert bdat(c, b).line == f"250 2.0.0 {len(b)} bytes received"
    assert bdat(c, data[90:], last=True).queue_id
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert body_of(raw) == b"first part\nsecond part\nthird part\n"


def test_bdat_zero_last_ends_the_message(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    s = uid()
    data = crlf(message(s, body="zero last\n"))
    assert bdat(c, data).line == f"250 2.0.0 {len(data)} bytes received"
    assert c.cmd("BDAT 0 LAST").queue_id
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert body_of(raw) == b"zero last\n"


def test_bdat_content_is_not_dot_unstuffed(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    s = uid()
    assert bdat(c, crlf(message(s, body="..x\n.\nend\n")), last=True).queue_id
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert body_of(raw) == b"..x\n.\nend\n"


def test_bdat_chunk_holding_command_text_is_data(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    s = uid()
    data = crlf(message(s, body="QUIT\nRSET\nMAIL FROM:<evil@remote.test>\n"))
    assert bdat(c, data, last=True).queue_id
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert body_of(raw) == b"QUIT\nRSET\nMAIL FROM:<evil@remote.test>\n"


def test_bdat_pipelined_with_commands(mta):
    c = mta.connect()
    c.ehlo()
    s = uid()
    data = crlf(message(s, body="pipelined chunks\n"))
    a, b = data[:40], data[40:]
    c.send(b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
           + f"BDAT {len(a)}\r\n".encode() + a
           + f"BDAT {len(b)} LAST\r\n".encode() + b + b"NOOP\r\nQUIT\r\n")
    r = c.replies(6)
    assert [x.line for x in r[:3]] == ["250 2.1.0 Ok", "250 2.1.5 Ok",
                                       f"250 2.0.0 {len(a)} bytes received"]
    assert r[3].queue_id, r[3]
    assert [x.line for x in r[4:]] == ["250 2.0.0 Ok", "221 2.0.0 Bye"]
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert body_of(raw) == b"pipelined chunks\n"


def test_bdat_without_rcpt(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.send(b"BDAT 4 LAST\r\nabcd")
    assert c.reply().line == "503 5.5.1 Need RCPT command"
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_data_after_bdat_is_refused(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert bdat(c, b"Subject: x\r\n").code == 250
    assert c.cmd("DATA").code == 503


# -- recipients

def test_unknown_user(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<nosuch@example.test>").line == "550 5.1.1 User unknown"


def test_relay_denied(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<alice@remote.test>").line == "554 5.7.1 Relay access denied"


def test_relay_denied_for_subdomain_of_local_domain(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<alice@sub.example.test>").line == "554 5.7.1 Relay access denied"


def _deliver_to(mta, rcpt, user):
    c = mta.connect()
    c.ehlo()
    s = uid()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd(f"RCPT TO:<{rcpt}>").line == "250 2.1.5 Ok"
    assert c.cmd("DATA").code == 354
    c.send(dot_stuff(message(s, to=rcpt)) + b".\r\n")
    assert c.reply().queue_id
    c.quit()
    mta.maildir(user).wait(1, match=s)
    return s


def test_postmaster_of_first_domain(mta):
    _deliver_to(mta, "postmaster@example.test", "alice")


def test_postmaster_of_second_domain(mta):
    _deliver_to(mta, "postmaster@localhost", "alice")


def test_postmaster_is_case_insensitive(mta):
    _deliver_to(mta, "PostMaster@Example.Test", "alice")


def test_bare_postmaster(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<Postmaster>").line == "250 2.1.5 Ok"
    assert c.cmd("DATA").code == 354
    s = uid()
    c.send(dot_stuff(message(s, to="Postmaster")) + b".\r\n")
    assert c.reply().queue_id
    mta.maildir("alice").wait(1, match=s)


def test_postmaster_goes_to_configured_user(daemon):
    d = daemon(postmaster="bob")
    s = _deliver_to(d, "postmaster@example.test", "bob")
    assert d.maildir("alice").count(s) == 0


def test_alias_of_local_part_in_every_domain(mta):
    _deliver_to(mta, "abuse@example.test", "alice")
    _deliver_to(mta, "abuse@localhost", "alice")


def test_alias_of_full_address(mta):
    s = _deliver_to(mta, "info@example.test", "bob")
    assert mta.maildir("alice").count(s) == 0
    (raw,) = mta.maildir("bob").wait(1, match=s)
    assert re.fullmatch(r"Delivered-To: <?info@example\.test>?", header_block(raw)[1])


def test_full_address_alias_is_only_for_its_domain(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<info@localhost>").line == "550 5.1.1 User unknown"


def test_catchall_receives_unknown_local_parts(daemon):
    d = daemon(catchall="bob")
    _deliver_to(d, "whoever@example.test", "bob")


def test_catchall_does_not_open_relay(daemon):
    d = daemon(catchall="bob")
    c = d.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    assert c.cmd("RCPT TO:<whoever@remote.test>").line == "554 5.7.1 Relay access denied"


def test_empty_message_body_is_accepted(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA").code == 354
    c.send(b".\r\n")
    assert c.reply().queue_id


def test_eight_bit_body_is_kept(mta):
    c = mta.connect()
    c.ehlo()
    s = uid()
    c.cmd("MAIL FROM:<sender@remote.test> BODY=8BITMIME")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA").code == 354
    c.send(crlf(message(s, body="Grüße, café\n")) + b".\r\n")
    assert c.reply().queue_id
    (raw,) = mta.maildir("alice").wait(1, match=s)
    assert body_of(raw) == "Grüße, café\n".encode()


def test_abrupt_disconnect_in_data_queues_nothing(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA").code == 354
    s = uid()
    c.send(crlf(message(s, body="cut off\n")))
    c.close()
    # a later complete message arrives; the cut one never does
    s2 = _deliver_to(mta, "alice@example.test", "alice")
    assert mta.maildir("alice").count(s) == 0 and mta.maildir("alice").count(s2) == 1


def test_ehlo_resets_the_transaction(mta):
    # RFC 5321 4.1.4: EHLO in a transaction is like RSET
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.ehlo()
    assert c.cmd("RCPT TO:<alice@example.test>").line == "503 5.5.1 Need MAIL command"


def test_rset_after_bdat_chunk_discards_the_message(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    s = uid()
    assert bdat(c, crlf(message(s))).code == 250
    assert c.cmd("RSET").line == "250 2.0.0 Ok"
    assert c.cmd("BDAT 0 LAST").code == 503
    s2 = _deliver_to(mta, "alice@example.test", "alice")
    assert mta.maildir("alice").count(s) == 0 and mta.maildir("alice").count(s2) == 1


def test_bdat_size_not_a_number(mta):
    c = mta.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("BDAT ten LAST").line.startswith("501 5.5.4 ")
    assert c.cmd("NOOP").line == "250 2.0.0 Ok"


def test_size_parameter_not_a_number(mta):
    c = mta.connect()
    c.ehlo()
    r = c.cmd("MAIL FROM:<sender@remote.test> SIZE=lots")
    assert r.line.startswith("501 5.5.4 ") or r.line.startswith("555 5.5.4 "), r


def test_large_message_delivered_intact(mta):
    import hashlib
    c = mta.connect()
    c.ehlo()
    s = uid()
    lines = [hashlib.sha256(str(i).encode()).hexdigest() * 2 for i in range(40000)]  # ~5 MB
    lines[100] = "." + lines[100]
    body = "\n".join(lines) + "\n"
    c.transaction("sender@remote.test", ["alice@example.test"], message(s, body=body))
    (raw,) = mta.maildir("alice").wait(1, match=s, timeout=20)
    assert body_of(raw) == body.encode()


def test_quit_pipelined_with_more_commands_answers_only_quit(mta):
    c = mta.connect()
    c.send(b"QUIT\r\nNOOP\r\nNOOP\r\n")
    assert c.reply().line == "221 2.0.0 Bye"
    assert c.silence(0.5) == b""


def test_user_with_own_maildir_path(daemon, tmp_path):
    from pstlib import Maildir
    path = str(tmp_path / "elsewhere" / "carol")
    d = daemon(users=[{"name": "alice"}, {"name": "bob"}, {"name": "carol", "maildir": path}])
    c = d.connect()
    c.ehlo()
    s = uid()
    c.transaction("sender@remote.test", ["carol@example.test"], message(s, to="carol@example.test"))
    Maildir(path).wait(1, match=s)
    assert not (tmp_path / "d0" / "mail" / "carol").exists()


def test_full_address_alias_wins_over_user(daemon):
    # resolution order: postmaster, full-address alias, local-part alias, user, catch-all
    d = daemon(aliases=[{"from": "alice@localhost", "to": "bob"}])
    s1 = _deliver_to(d, "alice@localhost", "bob")
    s2 = _deliver_to(d, "alice@example.test", "alice")
    assert d.maildir("alice").count(s1) == 0 and d.maildir("bob").count(s2) == 0
