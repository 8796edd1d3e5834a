"""The only places that touch private or unstable APIs of dependencies: one module per dependency.

Each hook here has a test (tests/unit/test_compat_*.py) that fails loudly when an upgrade removes or
changes what it relies on; nothing outside this package reaches into websockets, aiormq or aio_pika.
"""
