"""An httpx transport that sends the gateway's upstream requests with aiohttp.

    client = httpx.AsyncClient(base_url="http://127.0.0.1:8100", transport=AiohttpTransport())

The gateway keeps httpx's API (tests swap in an ASGI fake of vLLM as the transport), but httpx's own
HTTP/1.1 stack (httpcore, h11 and anyio, in pure Python) costs ~80 us of CPU for each streamed chunk it
reads, several times what vLLM's server spends making it: on a few cores shared with vLLM, relaying
streams token by token then takes the CPU the engine needs. aiohttp parses HTTP in C (~13 us a chunk).
See benchmarks/README.md (``bench_serve.py --concurrency``) for what that does to throughput.

aiohttp's errors are raised as the httpx errors callers already handle (``ConnectError`` when vLLM is
not listening, ``ReadError`` when it breaks mid-stream, the timeouts as httpx timeouts). Bodies reach
httpx undecoded: httpx decodes ``Content-Encoding`` itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (a keep-alive connection pool) behind an ``httpx.AsyncClient``.

    The pool has no connection limit: every stream in flight holds one upstream connection for its whole
    length, and a limit (httpx's default is 100) would make the stream after it wait for a whole answer
    to end. The gateway's own clients bound how many there are."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None  # made on the first request, inside its loop
        self._loop: asyncio.AbstractEventLoop | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        try:
            upstream = await self._open().request(
                request.method, str(request.url), headers=list(request.headers.multi_items()),
                data=await request.aread(), allow_redirects=False, compress=None,
                timeout=aiohttp.ClientTimeout(sock_connect=timeout.get("connect"), sock_read=timeout.get("read")),
            )
        except aiohttp.ClientConnectorError as err:
            raise httpx.ConnectError(str(err), request=request) from err
        except aiohttp.ConnectionTimeoutError as err:
            raise httpx.ConnectTimeout("no connection in time", request=request) from err
        except TimeoutError as err:
            raise httpx.ReadTimeout("no answer in time", request=request) from err
        except aiohttp.ClientError as err:
            raise httpx.RemoteProtocolError(str(err), request=request) from err
        return httpx.Response(upstream.status, headers=list(upstream.raw_headers), request=request,
                              stream=_Body(upstream, request), extensions={"http_version": b"HTTP/1.1"})

    def _open(self) -> aiohttp.ClientSession:
        """The session of the running loop. A session lives in the loop that made it; a client used from a new
        loop (a test client runs each request in one of its own) gets a new session, and the old one's
        connections, whose loop has ended, are dropped."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            if self._session is not None and not self._session.closed:
                self._session.detach()
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _Body(httpx.AsyncByteStream):
    """An aiohttp response body as httpx reads it: each piece as it arrives off the socket."""

    def __init__(self, upstream: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._upstream, self._request = upstream, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._upstream.content.iter_any():
                yield piece
        except TimeoutError as err:
            raise httpx.ReadTimeout("no data in time", request=self._request) from err
        except aiohttp.ClientError as err:
            raise httpx.ReadError(str(err) or type(err).__name__, request=self._request) from err

    async def aclose(self) -> None:
        self._upstream.release()  # back to the pool when read to the end, else the connection is closed
