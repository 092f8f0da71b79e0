"""A TCP relay for the two-namespace cluster test: listen on LISTEN:port, forward to TARGET:port.

Usage: python tests/netns_relay.py LISTEN_HOST TARGET_HOST PORT [PORT ...]

Run inside a network namespace (``ip netns exec``) it makes the host's loopback-only stack
(Kafka, Cassandra, Redis) reachable at the namespace's own 127.0.0.1, through a veth pair.
"""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _serve(listen: str, target: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(handle, listen, port, reuse_address=True)


async def main(listen: str, target: str, ports: list[int]) -> None:
    servers = [await _serve(listen, target, p) for p in ports]
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]))
