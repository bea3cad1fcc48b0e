"""The benchmark suite as data: the brokers, their titles, the tiers, and each broker's steps.

A step is one script of this directory run as a subprocess (it writes JSON); its name is
the key of its result in the report (``report["steps"][name]``). The runner runs the
steps; the page reads this to name what failed.
"""

from __future__ import annotations

EMBEDDED = ["memory", "sqlite"]
#: the brokers with a server, each measured against its raw client
SERVERS = ["rabbitmq", "kafka", "sqs", "azure_servicebus"]
BROKERS = EMBEDDED + SERVERS
TITLES = {
    "memory": "memory",
    "sqlite": "SQLite",
    "rabbitmq": "RabbitMQ",
    "kafka": "Kafka",
    "sqs": "SQS",
    "azure_servicebus": "Azure Service Bus",
}
#: events/s of the latency runs: the emulators (moto, the Service Bus test broker) can't take 500
RATES = {
    "memory": 500,
    "sqlite": 500,
    "rabbitmq": 500,
    "kafka": 500,
    "sqs": 100,
    "azure_servicebus": 100,
}

#: the arguments of each step's script per tier (the latency script's apply to every broker)
TIERS: dict[str, dict[str, list[str]]] = {
    "quick": {
        "embedded": ["--events", "5000", "--repeat", "1", "--workers", "1,2,4"],
        "rabbitmq": ["-n", "2000", "--single", "500", "--repeat", "1"],
        "kafka": ["--events", "20000", "--single", "500"],
        "kafka_peers": ["--events", "5000", "--single", "300"],
        "sqs": ["-n", "150", "--repeat", "1"],
        "azure_servicebus": ["-n", "500", "--single", "100", "--repeat", "1"],
        "latency": ["--seconds", "2"],
        "contracts": ["--events", "10000", "--repeat", "3"],
    },
    "full": {
        "embedded": ["--events", "20000", "--repeat", "3", "--workers", "1,2,4"],
        "rabbitmq": ["-n", "5000", "--single", "2000", "--repeat", "3"],
        "kafka": ["--events", "50000", "--single", "2000", "--rounds", "5"],
        "kafka_peers": ["--events", "20000", "--single", "1000"],
        "sqs": ["-n", "300", "--repeat", "3"],
        "azure_servicebus": ["-n", "2000", "--single", "300", "--repeat", "3"],
        "latency": ["--seconds", "5"],
        "contracts": ["--events", "20000", "--repeat", "5"],
    },
}

#: each broker's throughput steps, in run order; step ``x`` runs ``benchmarks/bench_x.py``
#: (memory and sqlite share the embedded script: the runner runs it once; the contracts
#: script measures memory and, when it is up, RabbitMQ)
THROUGHPUT_STEPS = {
    "memory": ["embedded", "contracts"],
    "sqlite": ["embedded"],
    "rabbitmq": ["rabbitmq"],
    "kafka": ["kafka", "kafka_peers"],
    "sqs": ["sqs"],
    "azure_servicebus": ["azure_servicebus"],
}
THROUGHPUT_TIMEOUT, LATENCY_TIMEOUT = 900, 600


def steps_for(broker: str, tier: dict[str, list[str]]) -> list[tuple[str, list[str], float]]:
    """(step name, script + args, timeout) of one broker, in run order; latency comes last."""
    steps: list[tuple[str, list[str], float]] = [
        (step, [f"benchmarks/bench_{step}.py", *tier[step]], THROUGHPUT_TIMEOUT)
        for step in THROUGHPUT_STEPS.get(broker, [])
    ]
    latency = ["benchmarks/bench_latency.py", "--broker", broker, "--rate", str(RATES[broker])]
    steps.append((f"latency:{broker}", [*latency, *tier["latency"]], LATENCY_TIMEOUT))
    return steps
