"""Threads reading at once: through clones (in parallel) and through one shared object."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import memflow


def test_clones_and_a_shared_object_read_the_same_from_many_threads(dump):
    banner = dump.meta["linux_banner"].encode()
    with memflow.open(dump.chain) as os_:
        address = os_.kernel_symbol("linux_banner")
        pids = sorted(p.pid for p in os_.processes())

        def through_a_clone(_):
            with os_.clone() as mine:
                return [mine.read(address, len(banner)) for _ in range(200)], sorted(p.pid for p in mine.processes())

        def through_the_shared_one(_):
            return [os_.read(address, len(banner)) for _ in range(200)]

        with ThreadPoolExecutor(8) as pool:
            cloned = list(pool.map(through_a_clone, range(8)))
            shared = list(pool.map(through_the_shared_one, range(8)))
        assert all(reads == [banner] * 200 and listed == pids for reads, listed in cloned)
        assert all(reads == [banner] * 200 for reads in shared)


def test_processes_read_from_threads(dump):
    marker = dump.meta["marker"].encode()
    with memflow.open(dump.chain) as os_, os_.process("mfprobe_marker") as proc:
        hit = proc.scan(marker, limit=1)[0]
        buffers = [bytearray(len(marker)) for _ in range(16)]

        def read(buffer):
            with proc.clone() as mine:
                for _ in range(100):
                    mine.read_into(hit, buffer)
            return bytes(buffer)

        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(read, buffers)) == [marker] * 16


def test_a_short_read_waits_for_a_scan_in_another_thread(dump):
    # The scanning thread holds the object while its progress callback takes the GIL; a short
    # read from another thread must wait for the object without holding the GIL (else both
    # would wait for each other forever).
    import threading

    marker = dump.meta["marker"].encode()
    with memflow.open(dump.chain) as os_, os_.process("mfprobe_marker") as proc:
        hit = proc.scan(marker, limit=1)[0]
        about_to_read = threading.Event()
        results = []
        reader = threading.Thread(target=lambda: (about_to_read.set(), results.append(proc.read(hit, len(marker)))))

        def progress(done, total):
            if not reader.is_alive() and not results:
                reader.start()
                about_to_read.wait()

        assert proc.scan(marker, progress=progress)[0] == hit
        reader.join()
        assert results == [marker]
