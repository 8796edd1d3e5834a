"""What pyproject.toml cannot say: files that live outside bridge/ in the repository but that the
installed package reads, shipped inside it. The AMQP contract (schemas/) becomes `bridge/contract/` and
the example agents (examples/*.py, the demo runs the echo agent) become `bridge/examples/` in a wheel;
`bridge/resources.py` finds them in either layout. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["bridge", "bridge.*"]), "bridge.contract", "bridge.examples"],
    package_dir={"bridge.contract": "schemas", "bridge.examples": "examples"},
    package_data={"bridge.contract": ["*.schema.json", "asyncapi.yaml"]},
)
