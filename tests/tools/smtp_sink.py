#!/usr/bin/python3
"""A local SMTP server for the campaign tests: aiosmtpd (Debian's python3-aiosmtpd) on 127.0.0.1.

Every message it accepts is parsed with Python's email package and summarized as one JSON line in
--log: envelope, headers, MIME structure, parsing defects, and the decoded text part. It writes
its port to --port-file once it listens, and runs until SIGTERM.

    smtp_sink.py --log messages.jsonl --port-file port [--reject address ...] [--refuse-senders]
                 [--relay-denied] [--refuse-messages]
"""
import argparse
import email
import email.policy
import json
import os
import signal
import socket
import threading

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, log, reject, refuse_senders, relay_denied, refuse_messages):
        self.log = log
        self.reject = set(reject)
        self.refuse_senders = refuse_senders
        self.relay_denied = relay_denied
        self.refuse_messages = refuse_messages
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.refuse_senders:  # as a server that wants authentication first
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.relay_denied:  # as a relay that wants authentication: every recipient alike
            return "554 5.7.1 Relay access denied"
        if address in self.reject:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_messages:  # this message, after its data
            return "552 5.3.4 Message too big"
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        parts = [p.get_content_type() for p in msg.iter_parts()] if msg.is_multipart() else []
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "list_unsubscribe": str(msg["List-Unsubscribe"]),
            "headers": [k for k in msg.keys()],
            "content_type": msg.get_content_type(),
            "parts": parts,
            "defects": [str(d) for d in msg.defects] +
                       [str(d) for p in msg.walk() for d in p.defects],
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
        }
        with self.lock, open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 Message accepted"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--reject", action="append", default=[],
                    help="refuse this recipient with 550 (repeatable)")
    ap.add_argument("--refuse-senders", action="store_true",
                    help="refuse every MAIL FROM with 530 (authentication required)")
    ap.add_argument("--relay-denied", action="store_true",
                    help="refuse every RCPT TO with 554 5.7.1 (relay access denied)")
    ap.add_argument("--refuse-messages", action="store_true",
                    help="refuse every message after its data with 552 5.3.4")
    args = ap.parse_args()
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recorder = Recorder(args.log, args.reject, args.refuse_senders, args.relay_denied,
                        args.refuse_messages)
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(args.port_file + ".tmp", args.port_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.2):
        pass
    # aiosmtpd's Controller.stop() joins the server's thread, and that thread has been seen to
    # stay in epoll_wait for good (1 in some hundreds of runs; the test then waited on this
    # process until killed). Give it 5 s, then exit anyway: every message is written under the
    # lock and closed before its reply, so with the lock held no record is cut short.
    stopper = threading.Thread(target=controller.stop, daemon=True)
    stopper.start()
    stopper.join(5)
    with recorder.lock:
        os._exit(0)


if __name__ == "__main__":
    main()
