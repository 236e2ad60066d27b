"""The TCP connect check: can this region open a connection to host:port within the timeout?"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from typing import Any

from quorum_dr.config import TcpCheck
from quorum_dr.domain.results import FailureClass
from quorum_dr.probes.outcome import CheckOutcome


async def check_tcp(check: TcpCheck, *, timeout: float) -> CheckOutcome:
    """Resolve, connect, close. Never raises for a network failure, never takes longer than `timeout`."""
    target = f"{check.host}:{check.port}"
    loop = asyncio.get_running_loop()
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        async with asyncio.timeout(timeout):
            try:
                addresses = await loop.getaddrinfo(check.host, check.port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                return CheckOutcome.down(
                    FailureClass.DNS, elapsed(), f"cannot resolve {check.host}: {exc.strerror or exc}"
                )
            _, writer = await _connect_first(addresses)
            writer.close()
    except TimeoutError:
        return CheckOutcome.down(
            FailureClass.CONNECT_TIMEOUT, elapsed(), f"no TCP connection to {target} within {timeout:g} s"
        )
    except ConnectionRefusedError:
        return CheckOutcome.down(FailureClass.CONNECT_REFUSED, elapsed(), f"connection to {target} refused")
    except OSError as exc:
        return CheckOutcome.down(
            FailureClass.CONNECT_REFUSED, elapsed(), f"cannot connect to {target}: {exc.strerror or exc}"
        )
    latency = elapsed()
    return CheckOutcome.up(latency, f"TCP connection to {target} in {latency:.0f} ms")


async def _connect_first(
    addresses: Sequence[tuple[Any, ...]],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Try each resolved address in turn; raise the first address's error if none answers."""
    first_error: OSError | None = None
    for family, _, _, _, sockaddr in addresses:
        try:
            return await asyncio.open_connection(host=sockaddr[0], port=sockaddr[1], family=family)
        except OSError as exc:
            first_error = first_error or exc
    raise first_error or OSError(f"no address for {addresses}")
