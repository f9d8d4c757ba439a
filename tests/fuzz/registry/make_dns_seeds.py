#!/usr/bin/env python3
"""make_dns_seeds.py - writes the seed corpus of fuzz_dns (corpus/fuzz_dns/, next to this
script): well-formed queries of every form dns.h serves, and malformed ones (truncated
headers, question counts of 0 and 2, compression loops, pointers past the end or forwards,
label lengths that run past the end or use reserved label types, names over 255 bytes,
odd OPT records, responses, other opcodes).

Each seed is fuzz_dns's input: two control bytes, eight bytes of rnd, then the query (see
fuzz_dns.c). Run it again after changing the list; the files are committed.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_dns")

A, NS, SOA, TXT, AAAA, SRV, OPT, AXFR, ANY = 1, 2, 6, 16, 28, 33, 41, 252, 255


def name(text):
    out = b""
    for label in text.split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def header(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


def opt(payload=4096, version=0, rdata=b"", owner=b"\0"):
    return owner + struct.pack(">HHBBHH", OPT, payload, 0, version, 0, len(rdata)) + rdata


def query(qname, qtype=A, qclass=1, edns=None, **kw):
    q = header(ar=1 if edns is not None else 0, **kw) + name(qname) + struct.pack(">HH", qtype, qclass)
    if edns is not None:
        q += opt(edns)
    return q


def seed(ctl0, ctl1, q):
    return bytes([ctl0, ctl1]) + b"\x01\x23\x45\x67\x89\xab\xcd\xef" + q


seeds = {}
# well-formed: each form, over UDP (512 and 4096 bytes) and TCP, with 3 and 300 targets
forms = [
    ("a", "web.service.consul", A),
    ("aaaa", "web.service.consul", AAAA),
    ("any", "web.service.consul", ANY),
    ("srv", "web.service.consul", SRV),
    ("tag", "primary.web.service.consul", SRV),
    ("dc", "web.service.dc1.consul", A),
    ("tag_dc", "primary.web.service.dc1.consul", SRV),
    ("rfc2782", "_web._tcp.service.consul", SRV),
    ("rfc2782_tag_dc", "_web._primary.service.dc1.consul", SRV),
    ("node", "node1.node.consul", A),
    ("node_dc", "node1.node.dc1.consul", AAAA),
    ("node_srv", "node1.node.consul", SRV),
    ("apex_soa", "consul", SOA),
    ("apex_ns", "consul", NS),
    ("txt", "web.service.consul", TXT),
    ("unknown_form", "a.b.c.consul", A),
    ("outside", "example.com", A),
    ("root", ".", NS),
    ("axfr", "consul", AXFR),
    ("other_domain", "web.service.weft.example", SRV),
    ("case", "WeB.SeRvIcE.CoNsUl", A),
]
for tag, qn, qt in forms:
    seeds["ok_" + tag] = seed(0x00, 0x04, query(qn, qt))
    seeds["ok_" + tag + "_many_udp"] = seed(0x00, 0x0d, query(qn, qt))
    seeds["ok_" + tag + "_edns"] = seed(0x04, 0x0d, query(qn, qt, edns=4096))
    seeds["ok_" + tag + "_tcp"] = seed(0x11, 0x0e, query(qn, qt))
seeds["ok_nxdomain"] = seed(0x00, 0x00, query("nosuch.service.consul"))
seeds["ok_nodata"] = seed(0x00, 0x01, query("web.service.consul", SRV))
seeds["ok_class_ch"] = seed(0x00, 0x04, query("version.bind", TXT, 3))
seeds["ok_class_any"] = seed(0x00, 0x04, query("web.service.consul", A, 255))
seeds["ok_far_targets_tcp"] = seed(0x11, 0x0e, query("web.service.consul", SRV))
seeds["ok_weft_domain"] = seed(0x08, 0x04, query("web.service.eu-west.weft.example", SRV))

# truncated headers: 0..11 bytes, and a header with nothing after it
full = query("web.service.consul")
for n in range(12):
    seeds["trunc_header_%02d" % n] = seed(0, 4, full[:n])
seeds["header_only"] = seed(0, 4, full[:12])
for cut in (13, 20, len(full) - 4, len(full) - 1):
    seeds["trunc_question_%d" % cut] = seed(0, 4, full[:cut])

# question counts
seeds["qdcount_0"] = seed(0, 4, header(qd=0) + full[12:])
seeds["qdcount_2"] = seed(0, 4, header(qd=2) + full[12:] + full[12:])
seeds["qdcount_2_one_there"] = seed(0, 4, header(qd=2) + full[12:])
seeds["qdcount_ffff"] = seed(0, 4, header(qd=0xFFFF) + full[12:])

# responses and opcodes
seeds["response"] = seed(0, 4, header(flags=0x8180) + full[12:])
for op in (1, 2, 4, 5, 15):
    seeds["opcode_%d" % op] = seed(0, 4, header(flags=0x0100 | op << 11) + full[12:])

# compression: loops, pointers past the end, forwards, into the header, cut in half, chains
qt = struct.pack(">HH", A, 1)
seeds["ptr_self"] = seed(0, 4, header() + b"\xc0\x0c" + qt)
seeds["ptr_loop_label"] = seed(0, 4, header() + b"\x01a\xc0\x0c" + qt)
seeds["ptr_loop_two"] = seed(0, 4, header() + b"\x01a\xc0\x10\x01b\xc0\x0c" + qt)
seeds["ptr_past_end"] = seed(0, 4, header() + b"\xc0\xff" + qt)
seeds["ptr_far_past_end"] = seed(0, 4, header() + b"\xff\xff" + qt)
seeds["ptr_forward"] = seed(0, 4, header() + b"\xc0\x12" + qt + name("web.service.consul"))
seeds["ptr_into_header"] = seed(0, 4, header() + b"\xc0\x0b" + qt)
seeds["ptr_cut"] = seed(0, 4, header() + b"\xc0")
seeds["ptr_after_labels"] = seed(0, 4, header() + b"\x03web\x07service\xc0\x00" + qt)
chain = query("web.service.consul")
prev = 12
rrs = b""
for i in range(130):
    at = len(chain) + len(rrs)
    rrs += struct.pack(">HHHIH", 0xC000 | prev, TXT, 1, 0, 0)
    prev = at
seeds["ptr_chain_130"] = seed(0, 4, header(ar=130) + chain[12:] + rrs)
seeds["ptr_chain_10_then_opt"] = seed(
    0, 4, header(ar=11) + chain[12:] + rrs[: 10 * 12] + opt(1232))

# label lengths: past the end, reserved types 01 and 10, the largest, names over 255
seeds["label_past_end"] = seed(0, 4, header() + b"\x3fabc")
seeds["label_type_01"] = seed(0, 4, header() + b"\x43web\x00" + qt)
seeds["label_type_10"] = seed(0, 4, header() + b"\x83web\x00" + qt)
seeds["label_63"] = seed(0, 4, header() + b"\x3f" + b"x" * 63 + name("service.consul") + qt)
seeds["label_64"] = seed(0, 4, header() + b"\x40" + b"x" * 64 + name("service.consul") + qt)
seeds["name_255"] = seed(0, 4, header() + (b"\x3f" + b"y" * 63) * 3 + b"\x3d" + b"z" * 61 + b"\0" + qt)
seeds["name_256"] = seed(0, 4, header() + (b"\x3f" + b"y" * 63) * 3 + b"\x3e" + b"z" * 62 + b"\0" + qt)
seeds["labels_127"] = seed(0, 4, header() + b"\x01a" * 127 + b"\0" + qt)

# OPT records
base = header(ar=1) + full[12:]
for size in (0, 1, 511, 512, 513, 1232, 4095, 4096, 4097, 65535):
    seeds["opt_payload_%d" % size] = seed(0x04, 0x0d, base + opt(size))
seeds["opt_version_1"] = seed(0, 4, base + opt(4096, 1))
seeds["opt_version_255"] = seed(0, 4, base + opt(4096, 255))
seeds["opt_two"] = seed(0, 4, header(ar=2) + full[12:] + opt() + opt())
seeds["opt_owner_not_root"] = seed(0, 4, base + opt(owner=name("x")))
seeds["opt_owner_ptr"] = seed(0, 4, base + opt(owner=b"\xc0\x0c"))
seeds["opt_with_option"] = seed(0, 4, base + opt(4096, 0, struct.pack(">HH", 10, 8) + b"cookie!!"))
seeds["opt_rdlen_past_end"] = seed(0, 4, base + opt()[:-2] + b"\x00\x10")
seeds["opt_cut"] = seed(0, 4, base + opt()[:6])
seeds["opt_in_answer_section"] = seed(0, 4, header(an=1) + full[12:] + opt())
seeds["arcount_more_than_there"] = seed(0, 4, header(ar=3) + full[12:] + opt())
seeds["trailing_bytes"] = seed(0, 4, full + b"\xde\xad\xbe\xef")

# TCP: several records in other sections
seeds["tcp_ns_section"] = seed(0x11, 0x0e, header(ns=1) + full[12:] + name("consul") +
                               struct.pack(">HHIH", SOA, 1, 0, 0))

os.makedirs(OUT, exist_ok=True)
for old in os.listdir(OUT):
    os.remove(os.path.join(OUT, old))
for k, v in sorted(seeds.items()):
    with open(os.path.join(OUT, k), "wb") as f:
        f.write(v)
print("%d seeds in %s" % (len(seeds), OUT))
