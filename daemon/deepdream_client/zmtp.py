"""A ZeroMQ DEALER socket in pure Python, for a Python without pyzmq (GIMP's own).

Official GIMP builds (Windows, macOS, Flatpak, Snap) cannot load pyzmq, so when
`import zmq` fails the client library speaks ZMTP 3.1 itself (RFC 23, RFC 37)
over a standard socket: tcp:// only, the NULL mechanism (no CURVE: the relay,
`deepdream relay`, adds it), READY with Socket-Type DEALER, short and long
frames, multipart messages, ERROR, and PONG to the peer's PING.

The socket offers the few calls of pyzmq's that DreamClient makes (poll,
send_multipart, recv_multipart, close) with pyzmq's meaning, so that the
client is one code path for both transports: the connection is made in the
background of poll() (refused: tried again every 100 ms, as libzmq does), a
connection that breaks is made again, and nothing blocks past the timeout
the caller gave. Sending writes the message before it returns (pyzmq queues
it); a peer that takes nothing for SNDTIMEO milliseconds fails the send."""

import collections
import os
import select
import socket
import struct
import time

DEALER = 5  # pyzmq's values, so that the client can pass either module's constants
POLLIN, POLLOUT = 1, 2
NOBLOCK = 1
LINGER, SNDTIMEO, IPV6 = 17, 28, 42

RECONNECT_S = 0.1  # libzmq's default reconnect interval
DEFAULT_STALL_S = 30.0  # a send that moves no byte for this long fails (SNDTIMEO overrides)
_CHUNK = 1 << 20  # bytes written per send() call: large enough that the loop costs nothing at 5 GB/s
_READ = 1 << 16  # bytes read at once into the parse buffer
_MORE, _LONG, _COMMAND = 0x01, 0x02, 0x04
_OUR_GREETING = (b"\xff" + bytes(8) + b"\x7f" + bytes([3, 1]) + b"NULL".ljust(20, b"\0") + b"\0" + bytes(31))
# A connection: TCP connecting, our greeting sent, our READY sent (theirs is awaited), ready for messages.
_CONNECTING, _GREETING, _HANDSHAKE, _READY = "connecting", "greeting", "handshake", "ready"


class ZMTPError(OSError):
    """A socket that cannot be used as asked: an endpoint this transport cannot reach, a closed
    socket, a send the peer took nothing of in time. The message is a sentence for the user."""


class Context:
    """Holds the sockets it made, so that destroy() can close them all (pyzmq's meaning)."""

    def __init__(self):
        self._sockets = set()

    def socket(self, kind):
        if kind != DEALER:
            raise ZMTPError("this transport makes DEALER sockets only")
        made = Socket(self)
        self._sockets.add(made)
        return made

    def destroy(self, linger=0):
        for made in list(self._sockets):
            made.close()


class Socket:
    """One DEALER connection to one tcp:// endpoint."""

    def __init__(self, context=None):
        self._context = context
        self._address = None
        self._endpoint = None
        self._sock = None
        self._state = None
        self._next_try = 0.0
        self._buffer = bytearray()  # bytes read and not yet parsed
        self._body = None  # a long frame being read straight into its own buffer: [flags, bytearray, filled, size]
        self._frames = []  # the message being received
        self._messages = collections.deque()  # whole messages, for recv_multipart
        self._stall = DEFAULT_STALL_S
        self._sending = False  # inside a message's write: a PONG must wait for its end (frames never interleave)
        self._pong = None  # the context of a PING that came meanwhile
        self.closed = False
        self.problem = None  # why the last connection failed, in words (a bad greeting, CURVE asked, ERROR)

    def setsockopt(self, option, value):
        if option == SNDTIMEO:
            self._stall = DEFAULT_STALL_S if value < 0 else value / 1000
        # LINGER: nothing is ever left unsent at close; IPV6: getaddrinfo finds both families anyway.

    def connect(self, endpoint):
        scheme, _, address = endpoint.partition("://")
        if scheme != "tcp":
            raise ZMTPError(f"{scheme}:// needs the ZeroMQ library (pyzmq), which this Python lacks; use a tcp:// "
                            f"address such as tcp://127.0.0.1:5555")
        host, _, port = address.rpartition(":")
        self._address = (host[1:-1] if host.startswith("[") else host, int(port))
        self._endpoint = endpoint
        self._dial()

    # -- pyzmq's calls ----------------------------------------------------------------------

    def poll(self, timeout=None, flags=POLLIN):
        """POLLIN when a whole message waits, POLLOUT when the connection is ready to send; 0 after
        `timeout` milliseconds (None: no limit). Reading answers the peer's PINGs."""
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while True:
            self._check_open()
            if flags & POLLIN and self._messages:
                return POLLIN
            if flags & POLLOUT and self._state == _READY:
                return POLLOUT
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return 0
            self._step(remaining)

    def send_multipart(self, frames, flags=0):
        """Write the message whole; ZMTPError when not connected or the peer takes nothing for SNDTIMEO."""
        self._check_open()
        if self._state != _READY:
            raise ZMTPError(f"not connected to {self._endpoint}")
        self._sending = True
        try:
            self._write_message(frames)
        finally:
            self._sending = False
        if self._pong is not None and self._sock is not None:
            self._pong, context = None, self._pong
            self._handshake(_command(b"PONG", context))

    def _write_message(self, frames):
        small = bytearray()
        last = len(frames) - 1
        for index, frame in enumerate(frames):
            view = memoryview(frame).cast("B")
            more = _MORE if index < last else 0
            if view.nbytes > 255:
                small += struct.pack(">BQ", more | _LONG, view.nbytes)
            else:
                small += struct.pack(">BB", more, view.nbytes)
            if view.nbytes < _READ:
                small += view
            else:  # a payload is written from where it lies, not copied into the message
                self._write(small)
                self._write(view)
                small = bytearray()
        self._write(small)

    def recv_multipart(self):
        """The next whole message (poll first: this never waits). Long frames come as bytearrays."""
        self._check_open()
        if not self._messages:
            raise ZMTPError("no message is waiting (poll first)")
        return self._messages.popleft()

    def close(self):
        self.closed = True
        self._hang_up()
        if self._context is not None:
            self._context._sockets.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- the connection ------------------------------------------------------------------------

    def _check_open(self):
        if self.closed:
            raise ZMTPError("the socket was closed")

    def _dial(self):
        """Start a TCP connection (it completes in _step); the greeting goes out with it."""
        self._hang_up()
        try:
            family, kind, proto, _, address = socket.getaddrinfo(*self._address, type=socket.SOCK_STREAM)[0]
            self._sock = socket.socket(family, kind, proto)
        except OSError as error:
            self.problem = f"cannot look up {self._address[0]} ({error.strerror or error})"
            self._next_try = time.monotonic() + RECONNECT_S
            return
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # libzmq sets it: requests are small
        self._sock.connect_ex(address)
        self._state = _CONNECTING
        self._buffer.clear()

    def _hang_up(self, problem=None):
        if problem:
            self.problem = problem
        if self._sock is not None:
            self._sock.close()
        self._sock, self._state, self._body, self._frames = None, None, None, []
        self._next_try = time.monotonic() + RECONNECT_S

    def _step(self, timeout):
        """Wait up to `timeout` seconds (None: no limit) for the connection to move on, and move it."""
        if self._sock is None:
            pause = self._next_try - time.monotonic()
            if pause > 0:
                time.sleep(pause if timeout is None else min(pause, timeout))
                return
            self._dial()
            if self._sock is None:
                return
        writing = [self._sock] if self._state == _CONNECTING else []
        try:
            readable, writable, _ = select.select([self._sock], writing, [], timeout)
        except (OSError, ValueError):  # closed by another thread (close(), Context.destroy)
            self._check_open()
            raise
        if writable and self._state == _CONNECTING:
            failed = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if failed:  # refused, unreachable: libzmq keeps trying, and so do we
                self._hang_up(f"cannot connect to {self._endpoint} ({os.strerror(failed)})")
                return
            self._state = _GREETING
            self._handshake(_OUR_GREETING)
        if readable:
            self._read()

    def _read(self):
        try:
            if self._body is not None:
                flags, body, filled, size = self._body
                if filled == len(body):  # grown as bytes arrive: a frame header's size costs nothing until sent
                    body.extend(bytes(min(size - filled, max(filled, _READ))))
                with memoryview(body) as view, view[filled:] as rest:
                    count = self._sock.recv_into(rest)
                self._body[2] += count
            else:
                data = self._sock.recv(_READ)
                count = len(data)
                self._buffer += data
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._hang_up(f"the connection broke ({error.strerror or error})")
            return
        if count == 0:
            self._hang_up("the daemon closed the connection")
            return
        if self._body is not None:
            flags, body, filled, size = self._body
            if filled == size:
                self._body = None
                self._frame(flags, body)
        self._parse()

    def _parse(self):
        """Take the greeting, then whole frames, out of the buffer."""
        buffer = self._buffer
        if self._state == _GREETING:
            if len(buffer) < 64:
                if len(buffer) >= 1 and buffer[0] != 0xFF or len(buffer) >= 10 and buffer[9] != 0x7F:
                    self._hang_up(f"what answers at {self._endpoint} is not a ZeroMQ daemon (its greeting is wrong)")
                return
            self._greeting(bytes(buffer[:64]))
            del buffer[:64]
        while self._sock is not None and self._body is None and len(buffer) >= 2:
            flags = buffer[0]
            start = 9 if flags & _LONG else 2
            if len(buffer) < start:
                return
            size = struct.unpack_from(">Q", buffer, 1)[0] if flags & _LONG else buffer[1]
            if flags & ~(_MORE | _LONG | _COMMAND):
                self._hang_up(f"the daemon at {self._endpoint} sent a frame ZMTP does not know (flags {flags:#x})")
                return
            if len(buffer) - start >= size:
                frame = bytes(buffer[start:start + size])
                del buffer[:start + size]
                self._frame(flags, frame)
            elif size >= _READ:  # a long frame: the rest is read straight into its own buffer
                body = bytearray(buffer[start:])
                buffer.clear()
                self._body = [flags, body, len(body), size]
            else:
                return

    def _greeting(self, greeting):
        if greeting[0] != 0xFF or greeting[9] != 0x7F:
            self._hang_up(f"what answers at {self._endpoint} is not a ZeroMQ daemon (its greeting is wrong)")
            return
        if greeting[10] < 3:
            self._hang_up(f"the daemon at {self._endpoint} speaks ZMTP {greeting[10]}.x; this client needs 3.x")
            return
        mechanism = greeting[12:32].rstrip(b"\0").decode("ascii", "replace")
        if mechanism != "NULL":
            self._hang_up(f"the daemon at {self._endpoint} asks for {mechanism} encryption, which needs pyzmq: "
                          f"run `deepdream relay --to {self._endpoint} --server-key KEY` beside this program "
                          f"and connect to the relay")
            return
        self._state = _HANDSHAKE
        self._handshake(_command(b"READY", _property(b"Socket-Type", b"DEALER")))

    def _frame(self, flags, frame):
        if flags & _COMMAND:
            self._command(bytes(frame))
            return
        if self._state != _READY:
            self._hang_up(f"the daemon at {self._endpoint} sent a message before its READY")
            return
        self._frames.append(frame)
        if not flags & _MORE:
            self._messages.append(self._frames)
            self._frames = []

    def _command(self, body):
        name = body[1:1 + body[0]] if body else b""
        data = body[1 + len(name):]
        if name == b"READY" and self._state == _HANDSHAKE:
            kind = _properties(data).get(b"Socket-Type", b"")
            if kind not in (b"ROUTER", b"DEALER"):
                shown = kind.decode("ascii", "replace") or "unnamed"
                self._hang_up(f"the peer at {self._endpoint} is a ZeroMQ {shown} socket, not a daemon's ROUTER")
                return
            self._state = _READY
            self.problem = None
        elif name == b"ERROR":
            reason = data[1:1 + data[0]].decode("utf-8", "replace") if data else ""
            self._hang_up(f"the daemon at {self._endpoint} refused the connection: {reason or 'no reason given'}")
        elif name == b"PING" and len(data) >= 2:
            if self._sending:  # our message is going out: libzmq counts that as life, and the PONG follows it
                self._pong = data[2:18]
            else:
                self._handshake(_command(b"PONG", data[2:18]))  # the context, echoed (RFC 37)
        # PONG, SUBSCRIBE and commands of later versions: nothing to do for a DEALER

    def _handshake(self, data):
        """Write a greeting or command: a few bytes that the kernel takes at once; a failure has hung up."""
        try:
            self._write(data)
        except ZMTPError:
            pass

    def _write(self, data):
        """Write all of `data`; fails (ZMTPError) when the peer takes nothing for the stall limit."""
        view = memoryview(data).cast("B")
        sent = 0
        while sent < view.nbytes:
            if self._sock is None:
                raise ZMTPError(f"the connection to {self._endpoint} broke while sending ({self.problem})")
            try:
                sent += self._sock.send(view[sent:sent + _CHUNK])
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as error:
                self._hang_up(f"the connection broke ({error.strerror or error})")
                continue
            # Full: while the peer drains it, answer its PINGs (libzmq drops a peer that leaves them unanswered
            # for its heartbeat timeout, which a long send to a slow reader could pass) and keep what it sends.
            readable, writable, _ = select.select([self._sock], [self._sock], [], self._stall)
            if readable:
                self._read()
            elif not writable:
                self._hang_up(f"the daemon took nothing for {self._stall:g} s")
                raise ZMTPError(f"the daemon at {self._endpoint} took nothing of the message for {self._stall:g} s")


def _command(name, data=b""):
    body = bytes([len(name)]) + name + data
    if len(body) > 255:
        return struct.pack(">BQ", _COMMAND | _LONG, len(body)) + body
    return struct.pack(">BB", _COMMAND, len(body)) + body


def _property(name, value):
    return bytes([len(name)]) + name + struct.pack(">I", len(value)) + value


def _properties(data):
    """A READY command's metadata as {name: value}; a malformed tail ends the list."""
    found, at = {}, 0
    while at < len(data):
        size = data[at]
        name = data[at + 1:at + 1 + size]
        at += 1 + size
        if at + 4 > len(data):
            break
        length = struct.unpack_from(">I", data, at)[0]
        found[bytes(name)] = bytes(data[at + 4:at + 4 + length])
        at += 4 + length
    return found
