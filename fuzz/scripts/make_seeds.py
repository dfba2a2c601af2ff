#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz target into corpus/<target>/ (the
fuzzer then grows and `cargo fuzz cmin` minimises the corpus). Run from fuzz/."""
import hashlib, os, struct

def put(target, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

u16 = lambda n: struct.pack("<H", n)

# line_buffer: max, ncuts, cuts (u16 each), stream
for mx, cuts, s in [
    (16, [3, 9], b"hello\r\nworld\nthis line is too long for sixteen\npartial"),
    (4, [1, 2, 3, 4, 5], b"abcd\r\nabcde\r\nabcdef\n\n\r\n"),
    (0, [], b"\n\n\r\nx\n"),
    (63, [100], b"a" * 70 + b"\nok\n"),
]:
    put("line_buffer", bytes([mx, len(cuts)]) + b"".join(u16(c) for c in cuts) + s)

heads = [
    b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\n",
    b"\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nConnection: close, foo\r\n\r\n",
    b"GET http://h/a?b HTTP/1.1\r\nHost: h\r\nX:\r\nY:  v  \r\n\r\n",
]
for i, h in enumerate(heads):
    put("http_head", bytes([i & 1]) + u16(7 * i + 3) + h)

# http_body: mode, max u16, ncuts, cuts..., then per mode
put("http_body", bytes([0]) + u16(1000) + bytes([2]) + u16(3) + u16(11)
    + b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT")
put("http_body", bytes([0]) + u16(4) + bytes([0]) + b"3 ;e\nabc\n0\t\n\n")
put("http_body", bytes([1]) + u16(0) + bytes([1]) + u16(2) + u16(5) + b"helloGET")
put("http_body", bytes([2]) + u16(0) + bytes([1]) + u16(9) + bytes([3, 2, 5, 0, 15]) + b"hello, chunked world")

for ln, v in [(1, b"bytes=0-10"), (1, b"bytes=-5"), (1, b"bytes=5-"), (1, b" BYTES = 1-2 "),
              (0, b"bytes=0-0"), (1, b"bytes=1-2,3-4"), (1, b"bytes\xc3\xa9=0-1"), (1, b"bytes=99999999999999999999999-")]:
    put("http_range", bytes([ln, 100]) + v if ln == 1 else bytes([ln]) + v)

for p in [b"/a/../b", b"/%2e%2e/x", b"/a/./b/", b"//a//b", b"/dir/%2E./.hidden", b"http://h/a?x=/y",
          b"/caf%C3%A9", b"/bad%ff", b"/a%2fb", b"/a\\b", b"/a/..", b"https://h"]:
    put("http_path", b"\x00" + p)
    put("http_path", b"\x01" + p)

for l in [b":nick!u@h PRIVMSG #lobby :hello  there :)", b"USER guest 0 * :Real Name",
          b"@time=x;y=z  JOIN   #a,#b  ", b"PRIVMSG #x :", b"CMD " + b" ".join(str(i).encode() for i in range(20)),
          b":onlyprefix", b"PING :x\r", b"NICK \x00\x01bad"]:
    put("irc_message", l)

# http_conn: backend, flags, ops. op%8: 0-3 chunk(len, bytes), 4 pump, 5 half-close,
# 6 close, 7 canned(index)
def canned(*idx):
    return b"".join(bytes([7, i]) for i in idx)
put("http_conn", bytes([0, 16]) + canned(0, 1, 2) + bytes([4]) + canned(3, 4) + bytes([4]))
put("http_conn", bytes([2, 16 + 64]) + canned(12, 12, 7, 8) + bytes([4, 5]))
put("http_conn", bytes([3, 16]) + canned(5, 0))
put("http_conn", bytes([1, 0]) + bytes([0, 20]) + b"GET /plaintext HTTP/1" + bytes([4, 0, 20]) + b".1\r\nHost: x\r\n\r\n" + bytes([4]))
put("http_conn", bytes([4, 15 + 16]) + canned(0) + bytes([4]))
put("http_conn", bytes([5, 16 + 32]) + canned(14, 9, 10, 11, 13, 6, 15) + bytes([6]))
put("http_conn", bytes([0, 1]) + bytes([0, 10]) + b"GET / HTTP" + bytes([4]))

# chat: backend, flags, ops: op = kind<<3 | who; kind 0-11 chunk, 12-15 pump,
# 16-27 canned(index), 28-29 half-close / leave, 30-31 close
def c(who, i):
    return bytes([(16 << 3) | who, i])
pump = bytes([12 << 3])
put("chat_line", bytes([0, 0]) + c(0, 0) + c(1, 1) + pump + c(0, 2) + c(1, 5) + c(0, 3) + c(1, 8)
    + c(0, 11) + c(0, 12) + c(0, 6) + c(2, 13) + c(2, 2) + pump + c(0, 10) + c(1, 15) + pump)
put("chat_line", bytes([1, 1]) + c(0, 0) + b"".join(c(0, 2) for _ in range(10)) + pump)
put("chat_line", bytes([2, 2 + 8]) + c(0, 14) + c(0, 16) + pump + c(1, 0) + bytes([(30 << 3) | 1]))
put("chat_irc", bytes([0, 0]) + c(0, 0) + c(1, 1) + pump + c(0, 2) + c(0, 3) + c(1, 4) + c(0, 5)
    + c(1, 6) + c(0, 7) + c(0, 8) + c(0, 9) + c(1, 10) + c(1, 11) + c(1, 12) + c(0, 13) + c(0, 14)
    + c(0, 15) + c(0, 16) + pump + c(0, 17) + c(1, 18) + c(1, 19) + pump)
put("chat_irc", bytes([3, 1 + 8]) + c(0, 0) + b"".join(c(0, 4) for _ in range(10)) + pump)
put("chat_udp", bytes([0, 0]) + c(0, 0) + c(1, 1) + c(3, 0) + pump + c(0, 2) + c(1, 3) + c(3, 2)
    + pump + c(0, 4) + c(2, 2) + c(2, 5) + pump)
put("chat_udp", bytes([4, 4 + 1]) + c(0, 0) + pump + c(0, 2) + c(0, 2) + c(0, 2) + c(0, 2) + pump)

# ftp_command: a command line (the whole input)
for line in [b"USER anonymous", b"retr my file.txt", b"PORT 127,0,0,1,4,1", b"EPRT |1|127.0.0.1|6446|",
             b"EPRT |2|::1|80|", b"EPSV ALL", b"REST 100", b"CWD ../../etc", b"\xff\xf4\xff\xf2ABOR",
             b"CWD caf\xc3\xa9/\xff\xff", b"MKD /a//./b/../c", b"/a\x00b/../c"]:
    put("ftp_command", line)

# ftp_mini: max u16, ncuts, cuts (u16 each), stream of frames
def frame(b):
    return struct.pack("<i", len(b)) + b
for mx, cuts, s in [
    (200, [1, 2, 3], frame(b'{"cmd": "put", "filename": "a.txt", "filesize": 3}') + b"abc" + frame(b'{"cmd":"get","filename":"a.txt"}')),
    (8, [2], frame(b"12345678") + frame(b"123456789")),
    (100, [], struct.pack("<i", -1) + b"xx"),
    (100, [5, 9], frame(b'{"cmd":"list","reply":true}') + frame(b"[1]") + frame(b"")),
]:
    put("ftp_mini", u16(mx) + bytes([len(cuts)]) + b"".join(u16(c) for c in cuts) + s)
# ftp_reply: mode byte (0: paths, 1: replies), then per mode
for cwd, arg in [(b"/a/b", b"../c"), (b"/", b"/x/./y//z/.."), (b"/a", b".."), (b"/", b"a\rb")]:
    put("ftp_reply", bytes([0, len(cwd)]) + cwd + arg)
put("ftp_reply", bytes([1]) + u16(250) + bytes([5]) + b"a\r\nb" + b"211 x\nend")
put("ftp_reply", bytes([1]) + u16(7) + bytes([0]) + b"")

# ftp_conn: backend, flags, ops: op%8 0-3 chunk(len, bytes), 4 pump, 5 canned(index),
# 6 half-close, 7 close
def fc(*idx):
    return b"".join(bytes([5, i]) for i in idx)
put("ftp_conn", bytes([0, 0]) + fc(0, 2, 3, 9, 10, 12, 13, 15) + bytes([4]))
put("ftp_conn", bytes([1, 1]) + fc(0, 4, 5, 6, 11, 8, 7, 14, 16) + bytes([4]))
put("ftp_conn", bytes([2, 2]) + fc(0) + bytes([4]))
put("ftp_conn", bytes([3, 4]) + fc(17, 17, 17, 0) + bytes([0, 40]) + b"USER " + b"a" * 35 + bytes([4, 7]))

# tftp_packet: byte 0 % 3 picks the part: 0 a TFTP datagram, 1 netascii (block size
# byte, then text), 2 a discovery probe or answer.
for p in [b"\x00\x01file.bin\x00octet\x00blksize\x001428\x00tsize\x000\x00windowsize\x0016\x00",
          b"\x00\x02up.txt\x00netascii\x00timeout\x003\x00",
          b"\x00\x03\xff\xffdata", b"\x00\x04\x00\x01", b"\x00\x05\x00\x01File not found\x00",
          b"\x00\x06blksize\x00512\x00", b"\x00\x01f\x00mail\x00",
          b"\x00\x01f\x00octet\x00blksize\x007\x00windowsize\x000\x00"]:
    put("tftp_packet", b"\x00" + p)
put("tftp_packet", b"\x01\x05line one\nline two\r\nbare\r\x00end\r")
put("tftp_packet", b"\x02READYLOOP-DISCOVER 1 abc123\n")
put("tftp_packet", b"\x02READYLOOP-HERE 1 abc123\nname alpha\noffer tftp://10.0.0.1:6969\noffer x\n")
