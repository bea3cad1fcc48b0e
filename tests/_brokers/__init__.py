"""The test brokers every test directory shares (loaded by ``tests/conftest.py``).

Importable as ``eventbus_test_brokers`` (the root conftest registers the package by
path, since ``--import-mode=importlib`` puts no test directory on ``sys.path``):
``kafka``, ``sqs``, ``servicebus`` and ``rabbitmq`` are pytest plugins with the
session fixtures ``kafka_bootstrap``/``kafka_settings``, ``sqs_endpoint``/``sqs_names``,
``servicebus`` and ``rabbitmq_url``/``topology``/``exchange``/``raw_channel``.
A broker is started at most once per session, and only when a test asks for it;
the ``EVENTBUS_*`` variables of each module point the tests at an external one.
"""
