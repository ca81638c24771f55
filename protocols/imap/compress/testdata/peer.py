# An IMAP-like client over COMPRESS=DEFLATE for compress_test.go: zlib is
# the reference implementation of raw DEFLATE (wbits=-15) that real
# clients (Thunderbird, mutt) use. It sends each command line given on
# stdin, flushed as the second argument says ("sync": Z_SYNC_FLUSH, as
# Thunderbird; "partial": Z_PARTIAL_FLUSH, as isync's mbsync), and waits
# for the tagged answer, which must inflate from what the server flushed;
# it prints every answer line it inflated.
import socket, sys, zlib

port = int(sys.argv[1])
flush = {"sync": zlib.Z_SYNC_FLUSH, "partial": zlib.Z_PARTIAL_FLUSH}[sys.argv[2]]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(b"c0 COMPRESS DEFLATE\r\n")
plain = b""
while not plain.endswith(b"\r\n"):
    chunk = s.recv(1)
    if not chunk:
        sys.exit("closed before OK")
    plain += chunk
if plain != b"c0 OK DEFLATE active\r\n":
    sys.exit("unexpected answer %r" % plain)

comp = zlib.compressobj(6, zlib.DEFLATED, -15)
dec = zlib.decompressobj(-15)
out = sys.stdout.buffer
for line in sys.stdin.buffer.read().split(b"\n"):
    if not line:
        continue
    tag = line.split(b" ", 1)[0]
    s.sendall(comp.compress(line + b"\r\n") + comp.flush(flush))
    got = b""
    while not (got.startswith(tag + b" ") or (b"\r\n" + tag + b" ") in got) or not got.endswith(b"\r\n"):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed waiting for %r" % tag)
        got += dec.decompress(chunk)
    out.write(got)
s.close()
