"""The simulator over real TCP: serve(), faults on a socket, and the command."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import anyio
import httpx
import pytest
from anyio.streams.text import TextReceiveStream

from organik_async.testing import DEMO_API_KEY, Dataset, FakeOrganikAPI, Fault, Outcome, serve
from organik_async.testing.__main__ import build, parse_args

pytestmark = pytest.mark.anyio

DATASET = Dataset.generate(600, seed=31)
BODY = {"data": {"transaction_ids": DATASET.transaction_ids[:3]}}
PATH = f"/v2/{DEMO_API_KEY}/detailedreport/json/"


async def in_process_answer(fake: FakeOrganikAPI) -> bytes:
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://x") as http:
        return (await http.post(PATH, json=BODY)).content


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll: the counters are updated by the server's own thread, not by a task here."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


def port_is_closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


@pytest.mark.slow
async def test_serve_answers_over_tcp_like_in_process() -> None:
    fake = FakeOrganikAPI(DATASET)
    expected = await in_process_answer(FakeOrganikAPI(DATASET))
    with anyio.fail_after(20):
        async with serve(fake) as url, httpx.AsyncClient(base_url=url) as http:
            assert url.startswith("http://127.0.0.1:")
            response = await http.post(PATH, json=BODY)
            xml = await http.post(PATH + "xml/", json=BODY)
    assert response.content == expected
    assert response.headers["content-type"] == "application/json"
    assert xml.headers["content-type"] == "application/xml"
    assert fake.stats.requests == 2
    assert port_is_closed(url)


@pytest.mark.slow
async def test_serve_picks_a_free_port_each_time_and_shuts_down_with_idle_connections() -> None:
    fake = FakeOrganikAPI(DATASET)
    with anyio.fail_after(20):
        async with serve(fake) as first, serve(fake) as second:
            assert first != second
            async with httpx.AsyncClient() as http:
                for url in (first, second):
                    assert (await http.post(url + PATH, json=BODY)).status_code == 200
                started = time.perf_counter()
                # Leave the keep-alive connections open while the servers stop.
    assert time.perf_counter() - started < 3.0
    assert port_is_closed(first)
    assert port_is_closed(second)


@pytest.mark.slow
async def test_small_answers_are_not_held_back_by_delayed_acks() -> None:
    # Headers and body are two writes: without TCP_NODELAY each small answer
    # waits ~40 ms for the client's delayed ACK.
    fake = FakeOrganikAPI(DATASET)
    with anyio.fail_after(20):
        async with serve(fake) as url, httpx.AsyncClient(base_url=url) as http:
            await http.post(PATH, json=BODY)
            started = time.perf_counter()
            for _ in range(25):
                await http.post(PATH, json={"data": {"transaction_ids": [1]}})
            elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"25 small answers took {elapsed:.2f}s"


@pytest.mark.slow
async def test_dropped_connection_is_a_transport_error_over_tcp(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.disconnect(on_requests={1})])
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    with anyio.fail_after(20):
        async with serve(fake) as url, httpx.AsyncClient(base_url=url) as http:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await http.post(PATH, json=BODY)
            assert (await http.post(PATH, json=BODY)).status_code == 200
    assert fake.stats.outcomes == {Outcome.DROPPED: 1, Outcome.OK: 1}
    # The drop is on purpose: uvicorn's error line for it is filtered out.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.slow
async def test_truncated_body_arrives_whole_as_http_but_cut_as_json() -> None:
    expected = await in_process_answer(FakeOrganikAPI(DATASET))
    fake = FakeOrganikAPI(DATASET, faults=[Fault.truncate(0.5)])
    with anyio.fail_after(20):
        async with serve(fake) as url, httpx.AsyncClient(base_url=url) as http:
            response = await http.post(PATH, json=BODY)
    assert response.content == expected[: len(expected) // 2]
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.slow
async def test_trickle_trips_a_read_timeout_and_the_server_notices_the_client_left() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.trickle(16, 0.5)])
    timeout = httpx.Timeout(5.0, read=0.1)
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with httpx.AsyncClient(base_url=url, timeout=timeout) as http:
                with pytest.raises(httpx.ReadTimeout):
                    await http.post(PATH, json=BODY)
            await wait_for(lambda: fake.stats.in_flight == 0)
    assert fake.stats.outcomes == {Outcome.CLIENT_GONE: 1}


@pytest.mark.slow
async def test_a_client_that_gives_up_during_latency_ends_the_request_early() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(30.0)])
    with anyio.fail_after(20):
        async with serve(fake) as url:
            async with httpx.AsyncClient(base_url=url, timeout=0.2) as http:
                with pytest.raises(httpx.ReadTimeout):
                    await http.post(PATH, json=BODY)
            await wait_for(lambda: fake.stats.in_flight == 0)
    assert fake.stats.outcomes == {Outcome.CLIENT_GONE: 1}
    assert fake.stats.http_statuses == {}


@pytest.mark.slow
async def test_peak_in_flight_counts_concurrent_requests_over_tcp() -> None:
    fake = FakeOrganikAPI(DATASET, faults=[Fault.latency(0.3)])
    with anyio.fail_after(20):
        async with serve(fake) as url, httpx.AsyncClient(base_url=url) as http:
            statuses: list[int] = []

            async def one() -> None:
                statuses.append((await http.post(PATH, json=BODY)).status_code)

            async with anyio.create_task_group() as group:
                for _ in range(6):
                    group.start_soon(one)
    assert statuses == [200] * 6
    assert fake.stats.peak_in_flight == 6
    assert fake.stats.in_flight == 0


async def test_serve_reports_a_server_that_cannot_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=r"in use|Address"), anyio.fail_after(20):
            async with serve(FakeOrganikAPI(DATASET), port=port):
                pass  # pragma: no cover


@pytest.mark.slow
async def test_command_serves_until_sigterm_then_prints_stats() -> None:
    command = [
        sys.executable, "-m", "organik_async.testing", "serve",
        "--port", "0", "--rows", "600", "--seed", "31", "--warm", "none",
        "--fault", "status:503@1", "--max-ids", "5", "--key", DEMO_API_KEY,
    ]  # fmt: skip
    expected = await in_process_answer(FakeOrganikAPI(Dataset.generate(600, seed=31)))
    with anyio.fail_after(60):
        async with await anyio.open_process(command) as process:
            assert process.stdout is not None
            assert process.stderr is not None
            lines = TextReceiveStream(process.stdout)
            url = ""
            async for text in lines:
                url += text
                if "\n" in url:
                    break
            url = url.strip()
            async with httpx.AsyncClient(base_url=url) as http:
                first = await http.post(PATH, json=BODY)
                second = await http.post(PATH, json=BODY)
                too_many = await http.post(PATH, json={"data": {"transaction_ids": list(range(6))}})
            process.send_signal(signal.SIGTERM)
            code = await process.wait()
            errors = b"".join([chunk async for chunk in process.stderr]).decode()
    assert url.startswith("http://127.0.0.1:")
    assert code == 0
    assert first.status_code == 503
    assert second.content == expected
    assert too_many.json()["response"]["error"]["code"] == 96
    stats = json.loads(errors.strip().splitlines()[-1])
    assert stats["requests"] == 3
    assert stats["faults"] == {"status:503": 1}
    assert DEMO_API_KEY not in errors


@pytest.mark.slow
def test_command_rejects_bad_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "organik_async.testing", "serve", "--fault", "explode"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "bad fault" in result.stderr


def test_command_line_options_build_the_described_app() -> None:
    args = parse_args(
        [
            "serve", "--rows", "50", "--seed", "4", "--latency", "0.01:0.02",
            "--fault", "provider:94%0.5", "--max-ids", "9", "--bare-xml",
            "--key", "a" * 32, "--key", "b" * 32, "--string-track-id-share", "1",
            "--warm", "json,xml", "--max-concurrent", "3", "--errorcode-in", "xml,json",
            "--finalize-after", "10:20",
        ]
    )  # fmt: skip
    fake = build(args)
    assert len(fake.dataset) == 50
    assert fake.seed == 4
    assert fake.faults == [Fault.latency((0.01, 0.02)), Fault.provider_error(94, probability=0.5)]
    assert fake.max_ids_per_request == 9
    assert fake.max_concurrent_requests == 3
    assert fake.xml_wrapped is False
    assert fake.errorcode_in == {"json", "xml"}
    assert fake.finalize_after == (10.0, 20.0)
    assert fake.api_key == "a" * 32
    assert all(isinstance(track, str) for track in fake.dataset.gsm_track_ids())
    assert args.warm == ("json", "xml")
    assert parse_args(["serve", "--warm", "none"]).warm == ()


def test_command_line_defaults_are_the_providers_documents() -> None:
    fake = build(parse_args(["serve", "--rows", "50"]))
    assert fake.xml_wrapped is True
    assert build(parse_args(["serve", "--rows", "50", "--xml-wrapped"])).xml_wrapped is True
    assert fake.errorcode_in == {"json"}
    assert build(parse_args(["serve", "--errorcode-in", "none"])).errorcode_in == set()
    assert all(isinstance(track, int) for track in fake.dataset.gsm_track_ids())
    assert fake.max_concurrent_requests is None
    assert fake.finalize_after is None
    with pytest.raises(SystemExit):
        parse_args(["serve", "--errorcode-in", "yaml"])
    with pytest.raises(SystemExit):
        parse_args(["serve", "--bare-xml", "--xml-wrapped"])


@pytest.mark.slow
def test_bench_command_fetches_every_row_once_and_reports_rows_per_second() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "organik_async.testing", "bench", "--rows", "3000",
         "--concurrency", "2", "--kind", "gsm", "--batch", "100"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3,000 rows in 30 requests (gsm IDs, 100 per request" in result.stdout
    assert "rows/s" in result.stdout
