"""pulsar_lite: a fast, durable job server that speaks the Galaxy Pulsar protocol."""

__version__ = "0.1.0"
