#!/usr/bin/env python3
"""Writes the seed corpora of the pgoutput_decoder, transaction_assembler, capture_to_message
and config fuzz targets (tests/fuzz/README.md) from the captured pgoutput fixtures, the
example configuration and the configurations of the unit tests. The message_codec seeds come
from make_message_codec_seeds.cpp. Run from anywhere:  tests/fuzz/make_corpus.py
Seeds are named seed-*: inputs found by fuzzing (crash-*, regression-*) are kept when this
script rewrites the seeds."""

import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIXTURES = ROOT / "tests/fixtures/pgoutput"
CORPUS = HERE / "corpus"


def fixture(name):
    return [bytes.fromhex(line.strip()) for line in (FIXTURES / name).read_text().splitlines()
            if line.strip()]


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + name)).write_bytes(data)


def clear_seeds(target):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for f in d.glob("seed-*"):
        f.unlink()


def abridged_stream(messages, inserts_per_block=3):
    """The streamed fixture without most of its rows: every message but the Inserts beyond the
    first few of each stream block."""
    out, inserts = [], 0
    for m in messages:
        if m[:1] == b"S":
            inserts = 0
        if m[:1] == b"I":
            inserts += 1
            if inserts > inserts_per_block:
                continue
        out.append(m)
    return out


def stream_input(options, messages):
    """The transaction_assembler input format: an option byte, then length-prefixed payloads."""
    return bytes([options]) + b"".join(struct.pack(">H", len(m)) + m for m in messages)


# pgoutput messages built by hand, as tests/unit/pgoutput_test.cpp builds them.
def cstr(s):
    return s.encode() + b"\0"


def begin(xid, lsn=0x100):
    return b"B" + struct.pack(">QqI", lsn, 1000000, xid)


def commit(lsn, end):
    return b"C" + struct.pack(">BQQq", 0, lsn, end, 2000000)


def relation(oid, xid=None):
    head = b"R" + (struct.pack(">I", xid) if xid is not None else b"")
    return (head + struct.pack(">I", oid) + cstr("public") + cstr("keyed") + b"d" +
            struct.pack(">H", 2) + b"\1" + cstr("id") + struct.pack(">Ii", 23, -1) + b"\0" +
            cstr("note") + struct.pack(">Ii", 25, -1))


def text_value(s):
    return b"t" + struct.pack(">I", len(s)) + s.encode()


def insert(oid, key, xid=None):
    head = b"I" + (struct.pack(">I", xid) if xid is not None else b"")
    return head + struct.pack(">I", oid) + b"N" + struct.pack(">H", 2) + text_value(key) + b"n"


def message(prefix, content, xid=None, lsn=0x200):
    head = b"M" + (struct.pack(">I", xid) if xid is not None else b"")
    return (head + b"\1" + struct.pack(">Q", lsn) + cstr(prefix) +
            struct.pack(">I", len(content)) + content.encode())


def versions(key, own=1):
    return ('{"table": "public.keyed", "key": [%s], "row": [%d, 0], '
            '"columns": {"note": [%d, 0]}}' % (key, own, own))


# The targets that read a replication stream (stream_input.hpp) share their seeds.
STREAM_TARGETS = ("transaction_assembler", "capture_to_message")


def write_stream(name, data):
    for target in STREAM_TARGETS:
        write(target, name, data)


def pgoutput_seeds():
    for target in ("pgoutput_decoder",) + STREAM_TARGETS:
        clear_seeds(target)
    basic, origin, streamed = fixture("basic.hex"), fixture("origin.hex"), fixture("streamed.hex")
    seen = set()
    for name, messages in (("basic", basic), ("origin", origin),
                           ("streamed", abridged_stream(streamed, 2))):
        for i, m in enumerate(messages):
            if m not in seen:
                seen.add(m)
                write("pgoutput_decoder", "%s-%03d-%s" % (name, i, chr(m[0])), m)
    write("pgoutput_decoder", "hand-versions-message", message("pgbridge.versions",
                                                                versions(10)))

    write_stream("basic", stream_input(1, basic))
    write_stream("origin", stream_input(0, origin))
    write_stream("streamed-abridged", stream_input(1, abridged_stream(streamed)))
    write_stream("versions", stream_input(1, [
        relation(7), begin(1), insert(7, "10"), message("pgbridge.versions", versions(10)),
        insert(7, "11"), message("pgbridge.versions", versions(99, 2)),
        message("pgbridge-test", "hello"), commit(0x300, 0x380)]))
    write_stream("streamed-subtransaction-versions", stream_input(1, [
        b"S" + struct.pack(">IB", 700, 1), relation(7, 700), insert(7, "1", 701),
        message("pgbridge.versions", versions(1), 701), insert(7, "2", 700),
        message("pgbridge.versions", versions(2), 700), b"E",
        b"A" + struct.pack(">II", 700, 701),
        b"S" + struct.pack(">IB", 700, 0), insert(7, "3", 700), b"E",
        b"c" + struct.pack(">IBQQq", 700, 0, 0x400, 0x480, 3000000)]))
    write_stream("error-then-reset", stream_input(3, [
        commit(0x10, 0x20)] + origin))


# The configurations of tests/unit/config_test.cpp.
VALID = r'''[bridge]
name = "crm"

[sides.looma_crm]
conninfo = "host=127.0.0.1 port=5432 dbname=looma user=pgbridge"

[sides.zervigo]
conninfo = "host=127.0.0.1 port=5433 dbname=zervigo user=pgbridge"

[rabbitmq]
url = "amqp://pgbridge@127.0.0.1:5672/%2f"
max_priority = 10

[engine]
batch_size = 100
max_retries = 3
retry_delay_ms = 1000
timeout_ms = 30000

[[tables]]
name = "public.talents"
priority = 8

[[tables]]
name = "public.customers"
priority = 5
[tables.sides.zervigo]
name = "hr.candidates"
columns = { email = "contact_email" }

[conflicts]
default_strategy = "last_write_wins"
source_priority = ["looma_crm", "zervigo"]

[conflicts.field_priority]
email = "zervigo"
status = "looma_crm"
"public.customers.status" = "zervigo"
'''

MINIMAL = '''[bridge]
name = "b"
[sides.a]
conninfo = "dbname=a"
[sides.b]
conninfo = "dbname=b"
[rabbitmq]
url = "amqp://localhost"
[[tables]]
name = "s.t"
'''


def config_seeds():
    clear_seeds("config")
    write("config", "packaging-pgbridge.toml", (ROOT / "packaging/pgbridge.toml").read_bytes())
    write("config", "valid.toml", VALID.encode())
    write("config", "minimal.toml", MINIMAL.encode())
    write("config", "tls.toml", VALID.replace("amqp://", "amqps://").replace(
        "max_priority = 10", 'max_priority = 10\nca_file = "/etc/hostname"\n'
        'cert_file = "/etc/hostname"\nkey_file = "/etc/hostname"\nverify_peer = false\n'
        'password_file = "rabbit.pass"\nmax_message_bytes = 65536').encode())
    write("config", "status-metrics-verify.toml", (
        VALID.replace("max_retries = 3", 'max_retries = 3\nlog_level = "debug"') +
        '\n[status]\nmax_lag_seconds = 5\nmax_queued_messages = 9\nmax_slot_lag_mb = 7\n'
        '[metrics]\nlisten = "127.0.0.1:9187"\n'
        '[verify]\nschedule = "0-30/5 */6 1,15 * 1-5"\nauto_repair = true\n').encode())
    write("config", "strategies.toml", MINIMAL.replace("[sides.b]",
        '[sides.b]\npassword_file = "/nonexistent/b.pass"').encode() +
        b'[conflicts]\ndefault_strategy = "source_priority"\nsource_priority = ["b"]\n'
        b'[conflicts.field_priority]\n"s.t.c" = "a"\nd = "b"\n')
    write("config", "every-mistake.toml", (
        VALID.replace("batch_size = 100", "batch_size = 0")
        .replace("priority = 8", 'priority = "high"')
        .replace('name = "public.customers"', 'name = "PUBLIC.Talents"')
        .replace("[rabbitmq]", '[sides.third]\nconninfo = "dbname=x replication=1"\n[rabbitmq]')
        .replace('"last_write_wins"', '"newest_wins"')
        .replace("port=5433 dbname=zervigo", "port=5433 dbname") +
        '\n[metricz]\nlisten = "x"\n[verify]\nschedule = "0 25 * * *"\n').encode())
    write("config", "syntax-error.toml", VALID.replace("batch_size = 100",
                                                       "batch_size = = 100").encode())


pgoutput_seeds()
config_seeds()
for d in sorted(CORPUS.iterdir()):
    files = list(d.iterdir())
    print("%s: %d files, %d bytes" % (d.name, len(files), sum(f.stat().st_size for f in files)))
