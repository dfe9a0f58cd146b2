"""AiohttpTransport against a real socket: a small asyncio HTTP/1.1 server that answers in chunks, breaks
off, or says nothing, so each way an upstream behaves reaches httpx as httpx would report it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import httpx
import pytest

from lmforge.serve.transport import AiohttpTransport

pytestmark = pytest.mark.timeout(10)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return await reader.readexactly(length)


async def _serve(handler: Handler, check: Callable[[str], Awaitable[None]]) -> list[int]:
    """Run ``check(base_url)`` against a server that hands each connection to ``handler`` (per request);
    return how many connections the server accepted."""
    connections = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while not reader.at_eof():
                await _read_request(reader)
                await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    async with server:
        await check(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    return connections


def test_a_stream_arrives_as_it_is_sent_and_the_connection_is_kept() -> None:
    sent = asyncio.Event()

    async def three_events(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + _chunk(b"data: 1\n\n"))
        await writer.drain()
        await sent.wait()  # the client has read the first event before the next is written
        sent.clear()
        writer.write(_chunk(b"data: 2\n\n") + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()

    async def check(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport()) as client:
            for _ in range(2):
                response = await client.send(client.build_request("POST", "/v1/completions", json={"a": 1}),
                                             stream=True)
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream"
                pieces = response.aiter_bytes()
                assert await anext(pieces) == b"data: 1\n\n"
                sent.set()
                assert b"".join([piece async for piece in pieces]) == b"data: 2\n\ndata: [DONE]\n\n"
                await response.aclose()

    assert len(asyncio.run(_serve(three_events, check))) == 1  # the second request reused the connection


def test_upstream_failures_are_httpx_errors() -> None:
    async def breaks_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + _chunk(b"data: 1\n\n"))
        await writer.drain()
        writer.transport.abort()  # mid-body, as a killed vLLM would

    async def says_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def check_break(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport()) as client:
            response = await client.send(client.build_request("POST", "/x", json={}), stream=True)
            with pytest.raises(httpx.ReadError):
                async for _ in response.aiter_bytes():
                    pass

    async def check_silence(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport(), timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/x", json={})

    async def check_refused() -> None:
        with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post(f"http://127.0.0.1:{port}/x", json={})

    asyncio.run(_serve(breaks_off, check_break))
    asyncio.run(_serve(says_nothing, check_silence))
    asyncio.run(check_refused())


def test_a_stream_left_early_does_not_block_the_next_request() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD)
        while True:
            writer.write(_chunk(b"data: x\n\n"))
            await writer.drain()
            await asyncio.sleep(0.01)

    async def check(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport()) as client:
            for _ in range(2):  # the client hangs up after one event, twice
                response = await client.send(client.build_request("POST", "/x", json={}), stream=True)
                assert await anext(response.aiter_bytes()) == b"data: x\n\n"
                await response.aclose()

    assert len(asyncio.run(_serve(endless, check))) == 2  # a half-read connection is closed, not reused
