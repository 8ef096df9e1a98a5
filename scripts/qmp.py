#!/usr/bin/env python3
"""Tiny QMP (QEMU Machine Protocol) client, python3 stdlib only.

Used by scripts/guest-dump.sh to take a memory dump of a running guest:

    qmp.py SOCKET dump OUTFILE [--timeout SECONDS]
        qmp_capabilities, dump-guest-memory (ELF, paging=false, detached),
        wait for DUMP_COMPLETED / query-dump == completed, then quit.

    qmp.py SOCKET quit
        qmp_capabilities, quit.

    qmp.py SOCKET cmd EXECUTE [JSON-ARGUMENTS]
        run one arbitrary command and print its "return" value as JSON.

Exit status is 0 on success, non-zero (with a message on stderr) otherwise.
"""

import json
import os
import select
import socket
import sys
import time


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, connect_timeout=30.0):
        # QEMU creates the socket early, but we may race with its startup.
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"cannot connect to QMP socket {path}")
                time.sleep(0.2)
        self.buf = b""
        self.events = []
        greeting = self._read(timeout=connect_timeout)
        if not greeting or "QMP" not in greeting:
            raise QMPError(f"unexpected QMP greeting: {greeting!r}")
        self.execute("qmp_capabilities")

    def _read(self, timeout=None):
        """Read one JSON message (QMP is line-delimited JSON).

        Returns None if `timeout` seconds pass without a complete message.
        (Own buffering + select: socket.makefile() is unusable after a
        timeout.)"""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                r, _, _ = select.select([self.sock], [], [], left)
                if not r:
                    return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QMPError("QMP connection closed by QEMU")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, args=None):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.sock.sendall((json.dumps(msg) + "\n").encode())
        while True:
            resp = self._read()
            if "event" in resp:
                # Events may arrive interleaved with replies; keep them.
                self.events.append(resp)
                continue
            if "error" in resp:
                raise QMPError(f"{cmd}: {resp['error'].get('class')}: "
                               f"{resp['error'].get('desc')}")
            return resp.get("return")

    def wait_event(self, name, timeout):
        """Wait for an event; returns it, or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ev = self._read(timeout=left)
            if ev is not None and "event" in ev:
                self.events.append(ev)

    def quit(self):
        try:
            self.execute("quit")
        except QMPError:
            pass  # QEMU may close the connection before replying


def do_dump(q, outfile, timeout):
    outfile = os.path.abspath(outfile)
    # Physical-memory ELF core: PT_LOAD per RAM block (p_paddr = guest phys),
    # plus NT_PRSTATUS and "QEMU" (QEMUCPUState, incl. CR0-CR4) notes per vCPU.
    q.execute("dump-guest-memory", {
        "paging": False,
        "protocol": "file:" + outfile,
        "detach": True,
    })
    ev = q.wait_event("DUMP_COMPLETED", timeout)
    if ev is None:
        raise QMPError(f"dump did not complete within {timeout}s")
    if "error" in ev.get("data", {}):
        raise QMPError(f"dump failed: {ev['data']['error']}")
    status = q.execute("query-dump")
    if status.get("status") != "completed":
        raise QMPError(f"query-dump reports {status}")
    print(f"dump completed: {status.get('completed')} bytes of guest memory "
          f"-> {outfile}")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    sock, action = argv[1], argv[2]
    timeout = 300.0
    rest = argv[3:]
    if "--timeout" in rest:
        i = rest.index("--timeout")
        timeout = float(rest[i + 1])
        del rest[i:i + 2]
    try:
        q = QMP(sock)
        if action == "dump" and len(rest) == 1:
            do_dump(q, rest[0], timeout)
            q.quit()
        elif action == "quit" and not rest:
            q.quit()
        elif action == "cmd" and 1 <= len(rest) <= 2:
            args = json.loads(rest[1]) if len(rest) == 2 else None
            print(json.dumps(q.execute(rest[0], args), indent=2))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (QMPError, OSError, ValueError) as e:
        print(f"qmp.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
