"""Command-level checks of the readyloop FTP server with Python's ftplib.

Run by tests/ftp.rs as `/usr/bin/python3 ftp_checks.py HOST PORT ROOT CASE`; prints
"ok" and exits 0, or prints what failed and exits 1. ROOT is the server's anonymous
root on disk (the test checks files there). The server is configured by the test:
anonymous read-only, user alice/secret read-write with root ROOT/alice, a short
login delay, 3 attempts, a short idle timeout for the `idle` case.
"""
import ftplib
import io
import os
import socket
import sys
import time

HOST, PORT, ROOT, CASE = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def fail(what):
    print("FAIL:", what)
    sys.exit(1)


def check(cond, what):
    if not cond:
        fail(what)


def expect_error(code, f, *args):
    try:
        r = f(*args)
    except ftplib.all_errors as e:
        check(str(e).startswith(code), "%s%r: wanted %s, got %r" % (f.__name__, args, code, str(e)))
        return str(e)
    fail("%s%r: wanted %s, got success %r" % (f.__name__, args, code, r))


def connect():
    ftp = ftplib.FTP()
    ftp.connect(HOST, PORT, timeout=10)
    return ftp


def commands():
    ftp = connect()
    check(ftp.getwelcome().startswith("220"), "welcome")
    expect_error("530", ftp.sendcmd, "PWD")
    expect_error("503", ftp.sendcmd, "PASS x")
    check(ftp.login().startswith("230"), "anonymous login")
    check(ftp.sendcmd("SYST").startswith("215"), "SYST")
    feat = ftp.sendcmd("FEAT")
    check(feat.startswith("211-") and "EPSV" in feat and "UTF8" in feat and feat.endswith("211 End"), "FEAT: %r" % feat)
    check(ftp.sendcmd("OPTS UTF8 ON").startswith("200"), "OPTS UTF8")
    expect_error("501", ftp.sendcmd, "OPTS FOO")
    check(ftp.sendcmd("HELP").startswith("214-"), "HELP")
    check(ftp.sendcmd("STAT").startswith("211-"), "STAT")
    check(ftp.sendcmd("STAT /").startswith("213-"), "STAT /")
    check(ftp.sendcmd("NOOP").startswith("200"), "NOOP")
    check(ftp.sendcmd("ALLO 100").startswith("202"), "ALLO")
    expect_error("500", ftp.sendcmd, "XYZZ")
    expect_error("500", ftp.sendcmd, "TOOLONGVERB x")
    expect_error("502", ftp.sendcmd, "SITE CHMOD 777 x")
    expect_error("501", ftp.sendcmd, "TYPE")
    expect_error("504", ftp.sendcmd, "TYPE E")
    expect_error("504", ftp.sendcmd, "MODE B")
    expect_error("504", ftp.sendcmd, "STRU R")
    check(ftp.sendcmd("MODE S").startswith("200"), "MODE S")
    check(ftp.sendcmd("STRU F").startswith("200"), "STRU F")
    expect_error("503", ftp.sendcmd, "RNTO x")
    expect_error("425", ftp.sendcmd, "RETR hello.txt")  # no PASV/PORT yet
    check(ftp.pwd() == "/", "PWD /")
    ftp.cwd("sub")
    check(ftp.pwd() == "/sub", "CWD sub")
    check(ftp.sendcmd("CDUP").startswith("250"), "CDUP")
    check(ftp.pwd() == "/", "CDUP to /")
    expect_error("550", ftp.cwd, "nonexistent")
    check(ftp.size("hello.txt") == os.path.getsize(os.path.join(ROOT, "hello.txt")), "SIZE")
    expect_error("550", ftp.size, "sub")
    m = ftp.sendcmd("MDTM hello.txt")
    check(m.startswith("213 ") and len(m) == 18, "MDTM %r" % m)
    mlst = ftp.sendcmd("MLST hello.txt")
    check(mlst.startswith("250-") and "type=file;" in mlst, "MLST %r" % mlst)
    facts = dict(ftp.mlsd("/"))
    check(facts["hello.txt"]["type"] == "file" and facts["sub"]["type"] == "dir", "MLSD %r" % facts)
    # REST
    big = open(os.path.join(ROOT, "big.bin"), "rb").read()
    got = []
    ftp.retrbinary("RETR big.bin", got.append, rest=1000)
    check(b"".join(got) == big[1000:], "REST 1000 + RETR")
    got = []
    ftp.retrbinary("RETR big.bin", got.append)
    check(b"".join(got) == big, "RETR big.bin")
    expect_error("554", ftp.retrbinary, "RETR hello.txt", got.append, 8, 10 ** 9)
    # ASCII: LF on disk, CRLF on the wire; retrlines strips the CRLF.
    lines = []
    ftp.retrlines("RETR lines.txt", lines.append)
    check(lines == ["one", "two", "three"], "ASCII RETR %r" % lines)
    raw = []
    ftp.sendcmd("TYPE A")
    conn = ftp.transfercmd("RETR lines.txt")
    while True:
        b = conn.recv(65536)
        if not b:
            break
        raw.append(b)
    conn.close()
    ftp.voidresp()
    check(b"".join(raw) == b"one\r\ntwo\r\nthree\r\n", "ASCII wire %r" % raw)
    ftp.sendcmd("TYPE I")
    # Anonymous is read-only.
    expect_error("550", ftp.storbinary, "STOR nope.txt", io.BytesIO(b"x"))
    expect_error("550", ftp.mkd, "newdir")
    expect_error("550", ftp.delete, "hello.txt")
    check(not os.path.exists(os.path.join(ROOT, "nope.txt")), "no upload by anonymous")
    # Bounce attack: PORT/EPRT to another address or a privileged port.
    expect_error("501", ftp.sendcmd, "PORT 10,0,0,1,4,1")
    expect_error("501", ftp.sendcmd, "EPRT |1|10.0.0.1|2000|")
    expect_error("501", ftp.sendcmd, "PORT 127,0,0,1,0,21")
    expect_error("501", ftp.sendcmd, "PORT 1,2,3")
    expect_error("522", ftp.sendcmd, "EPRT |3|x|1|")
    # Oversize command line: 500, and the connection goes on.
    ftp.sock.sendall(b"NOOP " + b"x" * 10000 + b"\r\n")
    expect_error("500", ftp.getresp)
    check(ftp.sendcmd("NOOP").startswith("200"), "NOOP after an oversize line")
    # A data connection from another address than the control connection's is
    # refused; the right one still works.
    ftp.sendcmd("TYPE I")
    resp = ftp.sendcmd("PASV")
    host, port = ftplib.parse227(resp)
    thief = socket.socket()
    thief.bind(("127.0.0.2", 0))
    thief.settimeout(5)
    thief.connect((host, port))
    try:
        closed = thief.recv(10) == b""
    except ConnectionResetError:
        closed = True
    check(closed, "a data connection from 127.0.0.2 was not closed")
    thief.close()
    data = socket.create_connection((host, port), timeout=10)
    check(ftp.sendcmd("RETR hello.txt").startswith("150"), "RETR after a refused thief")
    body = b""
    while True:
        b = data.recv(65536)
        if not b:
            break
        body += b
    data.close()
    check(ftp.voidresp().startswith("226"), "226 after the transfer")
    check(body == open(os.path.join(ROOT, "hello.txt"), "rb").read(), "data after a thief")
    # EPSV ALL: afterwards PASV and PORT are refused, EPSV works.
    check(ftp.sendcmd("EPSV ALL").startswith("200"), "EPSV ALL")
    expect_error("503", ftp.sendcmd, "PASV")
    expect_error("503", ftp.sendcmd, "PORT 127,0,0,1,4,1")
    ftp.af = socket.AF_INET6  # makes ftplib use EPSV
    names = ftp.nlst()
    check("hello.txt" in names, "NLST over EPSV %r" % names)
    check(ftp.quit().startswith("221"), "QUIT")


def jail():
    ftp = connect()
    ftp.login()
    ftp.cwd("/../../..")
    check(ftp.pwd() == "/", "CWD above the root stays at the root")
    ftp.cwd("/")
    expect_error("550", ftp.retrbinary, "RETR ../secret.txt", lambda b: None)
    expect_error("550", ftp.retrbinary, "RETR /../../secret.txt", lambda b: None)
    expect_error("550", ftp.retrbinary, "RETR escape.txt", lambda b: None)
    expect_error("550", ftp.cwd, "escape-dir")
    expect_error("550", ftp.size, "escape-dir/secret.txt")
    expect_error("501", ftp.sendcmd, "CWD a\x00b")
    expect_error("501", ftp.sendcmd, "RETR a\x01b")
    names = ftp.nlst()
    check("escape.txt" not in names and "escape-dir" not in names, "listing shows links out: %r" % names)
    check("inside.txt" in names, "listing hides a link inside: %r" % names)
    listing = []
    ftp.retrlines("LIST -la", listing.append)
    check(not any("escape" in l for l in listing), "LIST shows links out")
    ftp.quit()


def abort():
    ftp = connect()
    ftp.login()
    ftp.sendcmd("TYPE I")
    conn = ftp.transfercmd("RETR huge.bin")
    got = conn.recv(1024)
    check(len(got) > 0, "some data before ABOR")
    first = ftp.abort()
    check(first.startswith("426"), "ABOR mid-transfer: first reply %r" % first)
    second = ftp.getresp()
    check(second.startswith("226"), "ABOR: second reply %r" % second)
    conn.close()
    check(ftp.sendcmd("NOOP").startswith("200"), "NOOP after ABOR")
    # ABOR with nothing running
    check(ftp.sendcmd("ABOR").startswith("225"), "ABOR idle")
    # the session still transfers
    got = []
    ftp.retrbinary("RETR hello.txt", got.append)
    check(b"".join(got) == open(os.path.join(ROOT, "hello.txt"), "rb").read(), "RETR after ABOR")
    ftp.quit()


def login():
    # Failed logins are answered after a delay; the third closes the connection.
    ftp = connect()
    t0 = time.monotonic()
    expect_error("530", ftp.login, "alice", "wrong")
    check(time.monotonic() - t0 >= 0.15, "no delay after a failed login")
    expect_error("530", ftp.login, "nobody", "x")
    expect_error("530", ftp.login, "alice", "wrong again")
    expect_error("421", ftp.getresp)
    try:
        ftp.sendcmd("NOOP")
        fail("connection still open after 3 failed logins")
    except (OSError, EOFError, ftplib.Error):
        pass
    # alice: read-write in her own root.
    ftp = connect()
    check(ftp.login("alice", "secret").startswith("230"), "alice login")
    home = os.path.join(ROOT, "alice")
    ftp.storbinary("STOR up.bin", io.BytesIO(b"0123456789"))
    check(open(os.path.join(home, "up.bin"), "rb").read() == b"0123456789", "STOR")
    ftp.storbinary("APPE up.bin", io.BytesIO(b"abc"))
    check(open(os.path.join(home, "up.bin"), "rb").read() == b"0123456789abc", "APPE")
    ftp.sendcmd("TYPE I")
    ftp.sendcmd("REST 4")
    ftp.storbinary("STOR up.bin", io.BytesIO(b"XY"))
    check(open(os.path.join(home, "up.bin"), "rb").read() == b"0123XY", "REST + STOR")
    ftp.storlines("STOR text.txt", io.BytesIO(b"a\nb\n"))
    check(open(os.path.join(home, "text.txt"), "rb").read() == b"a\nb\n", "ASCII STOR")
    ftp.sendcmd("TYPE I")
    conn, _ = ftp.ntransfercmd("STOU")
    conn.sendall(b"unique")
    conn.close()
    r = ftp.voidresp()
    check("stored as" in r, "STOU reply %r" % r)
    ftp.mkd("dir")
    ftp.rename("text.txt", "dir/moved.txt")
    check(os.path.exists(os.path.join(home, "dir", "moved.txt")), "RNFR/RNTO")
    ftp.delete("dir/moved.txt")
    ftp.rmd("dir")
    check(not os.path.exists(os.path.join(home, "dir")), "RMD")
    expect_error("550", ftp.rmd, "/")
    # alice cannot see the anonymous root
    expect_error("550", ftp.size, "/hello.txt")
    leftovers = [n for n in os.listdir(home) if n.endswith(".part")]
    check(not leftovers, "temporary files left: %r" % leftovers)
    ftp.quit()


def idle():
    ftp = connect()
    ftp.login()
    time.sleep(1.5)
    expect_error("421", ftp.sendcmd, "NOOP")


{"commands": commands, "jail": jail, "abort": abort, "login": login, "idle": idle}[CASE]()
print("ok")
