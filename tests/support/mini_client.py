"""A mini-protocol client written the way the classroom writes it: a 4-byte
struct.pack('i', n) length, a JSON header, then the file bytes for put; get reads
the header and then `filesize` bytes. `put` reads nothing after sending.

Usage: mini_client.py HOST PORT put FILE | get NAME | list
"""
import json
import os
import socket
import struct
import sys

host, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client.settimeout(10)
client.connect((host, port))


def send_header(header):
    header_bytes = json.dumps(header).encode("utf-8")
    client.send(struct.pack("i", len(header_bytes)))
    client.send(header_bytes)


def recv_exact(n):
    data = b""
    while len(data) < n:
        chunk = client.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def recv_header():
    header_len = struct.unpack("i", recv_exact(4))[0]
    return json.loads(recv_exact(header_len).decode("utf-8"))


if cmd == "put":
    filename = sys.argv[4]
    filesize = os.path.getsize(filename)
    send_header({"cmd": "put", "filename": os.path.basename(filename), "filesize": filesize})
    with open(filename, "rb") as f:
        for line in f:
            client.send(line)
elif cmd == "get":
    send_header({"cmd": "get", "filename": sys.argv[4]})
    header = recv_header()
    filesize = header["filesize"]
    received = 0
    with open(os.path.basename(sys.argv[4]), "wb") as f:
        while received < filesize:
            data = client.recv(min(8192, filesize - received))
            if not data:
                break
            f.write(data)
            received += len(data)
    print(json.dumps(header))
elif cmd == "list":
    send_header({"cmd": "list", "reply": True})
    print(json.dumps(recv_header()))
client.close()
