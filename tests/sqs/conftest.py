"""Fixtures for the SQS adapter tests.

The endpoint (``sqs_endpoint``: moto for the session, or ``EVENTBUS_SQS_ENDPOINT`` /
``EVENTBUS_SQS_REGION``) and the per-test names (``sqs_names``) come from
``tests/_brokers/sqs.py``; moto runs through ``_moto.py`` here.
"""
