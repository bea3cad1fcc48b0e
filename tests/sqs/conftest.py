"""Fixtures for the SQS adapter tests: an SQS/SNS endpoint and per-test names.

By default a moto server (``moto[server]``) is started for the session on a free
port, with dummy credentials, and stopped at the end. To run against something
else, set ``EVENTBUS_SQS_ENDPOINT``:

- ``EVENTBUS_SQS_ENDPOINT=http://127.0.0.1:4566`` (LocalStack, another moto, ...):
  dummy credentials are set unless the environment has some;
- ``EVENTBUS_SQS_ENDPOINT=aws``: real AWS, with your usual credentials chain.

``EVENTBUS_SQS_REGION`` picks the region (``us-east-1``). Every test gets its own
queue prefix and topic under a per-run id; what a test created is deleted after it.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eventbus_sqs import SqsSettings

RUN = uuid.uuid4().hex[:6]
_counter = itertools.count(1)


@dataclass
class SqsEndpoint:
    """Where the tests' SQS and SNS are."""

    endpoint_url: str | None
    region: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session(region_name=self.region).client(
            service, endpoint_url=self.endpoint_url
        )

    def url(self, **options: Any) -> str:
        from urllib.parse import urlencode

        query = {"region": self.region, **options}
        if self.endpoint_url:
            query["endpoint_url"] = self.endpoint_url
        return "sqs://?" + urlencode({k: str(v).lower() if isinstance(v, bool) else v
                                      for k, v in query.items()})  # fmt: skip


@dataclass
class SqsNames:
    """One test's namespace: a queue prefix and a topic name nobody else uses."""

    endpoint: SqsEndpoint
    prefix: str
    topic: str

    def settings(self, **options: Any) -> SqsSettings:
        base: dict[str, Any] = {
            "region": self.endpoint.region,
            "endpoint_url": self.endpoint.endpoint_url,
            "prefix": self.prefix,
            "topic": self.topic,
        }
        return SqsSettings(**{**base, **options})

    def options(self, **options: Any) -> dict[str, Any]:
        return {"prefix": self.prefix, "topic": self.topic, **options}

    def queue_urls(self) -> list[str]:
        sqs = self.endpoint.client("sqs")
        urls: list[str] = []
        for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=self.prefix):
            urls += page.get("QueueUrls", [])
        return urls

    def cleanup(self) -> None:
        sqs, sns = self.endpoint.client("sqs"), self.endpoint.client("sns")
        for url in self.queue_urls():
            try:
                sqs.delete_queue(QueueUrl=url)
            except Exception:
                pass
        for page in sns.get_paginator("list_topics").paginate():
            for topic in page.get("Topics", []):
                name = topic["TopicArn"].rsplit(":", 1)[-1]
                if name in (self.topic, self.topic + ".fifo"):
                    sns.delete_topic(TopicArn=topic["TopicArn"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _moto_command(port: int) -> list[str] | None:
    """moto's server, with its concurrent-receive race fixed (see ``_moto.py``)."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        return None  # moto without its [server] extra
    return [sys.executable, str(Path(__file__).with_name("_moto.py")), "127.0.0.1", str(port)]


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[SqsEndpoint]:
    region = os.environ.get("EVENTBUS_SQS_REGION", "us-east-1")
    target = os.environ.get("EVENTBUS_SQS_ENDPOINT", "").strip()
    with pytest.MonkeyPatch.context() as mp:
        if target.lower() == "aws":
            yield SqsEndpoint(None, region)
            return
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            mp.setenv("AWS_ACCESS_KEY_ID", "testing")
            mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.delenv("AWS_PROFILE", raising=False)
        if target:
            yield SqsEndpoint(target, region)
            return
        port = _free_port()
        command = _moto_command(port)
        if command is None:
            pytest.skip("moto_server is not installed (pip install 'moto[server]'), "
                        "and EVENTBUS_SQS_ENDPOINT is not set")  # fmt: skip
        proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with all it starts
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"moto_server did not start on port {port}")
                    time.sleep(0.05)  # polling for the port, with a deadline
            yield SqsEndpoint(f"http://127.0.0.1:{port}", region)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture
def sqs_names(sqs_endpoint: SqsEndpoint) -> Iterator[SqsNames]:
    """A prefix and topic for this test only; its queues and topic are deleted after it."""
    n = next(_counter)
    names = SqsNames(sqs_endpoint, prefix=f"eb{RUN}{n:03d}-", topic=f"eb{RUN}{n:03d}")
    yield names
    names.cleanup()
