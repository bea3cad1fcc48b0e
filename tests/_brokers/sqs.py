"""SQS fixtures: an SQS/SNS endpoint for the session and per-test names.

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
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .procs import free_port, stop_group, wait_listening

RUN = uuid.uuid4().hex[:6]
MOTO = Path(__file__).parents[1] / "sqs" / "_moto.py"
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
        return "sqs://?" + urlencode(
            {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
        )


@dataclass
class SqsNames:
    """One test's namespace: a queue prefix and a topic name nobody else uses."""

    endpoint: SqsEndpoint
    prefix: str
    topic: str

    def settings(self, **options: Any) -> Any:
        from eventbus_sqs import SqsSettings

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


def new_names(endpoint: SqsEndpoint) -> SqsNames:
    n = next(_counter)
    return SqsNames(endpoint, prefix=f"eb{RUN}{n:03d}-", topic=f"eb{RUN}{n:03d}")


def _need_moto() -> None:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        pytest.skip(
            "moto_server is not installed (pip install 'moto[server]'), "
            "and EVENTBUS_SQS_ENDPOINT is not set"
        )


class MotoServer:
    """moto's server on one port (see ``tests/sqs/_moto.py``), which a test may stop and
    start again (as an endpoint that goes away and comes back; moto's state is lost)."""

    def __init__(self, port: int | None = None) -> None:
        _need_moto()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(MOTO), "127.0.0.1", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with all it starts
        )
        wait_listening(self.port, self._proc, "moto_server")

    def stop(self) -> None:
        if self._proc is not None:
            stop_group(self._proc)
            self._proc = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextmanager
def moto(port: int | None = None) -> Iterator[str]:
    """moto's server (with its concurrent-receive race fixed, see ``tests/sqs/_moto.py``).

    Yields its endpoint URL. Skips if ``moto[server]`` is not installed.
    """
    with MotoServer(port) as server:
        yield server.url


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
        with moto() as url:
            yield SqsEndpoint(url, region)


@pytest.fixture
def sqs_names(sqs_endpoint: SqsEndpoint) -> Iterator[SqsNames]:
    """A prefix and topic for this test only; its queues and topic are deleted after it."""
    names = new_names(sqs_endpoint)
    yield names
    names.cleanup()
