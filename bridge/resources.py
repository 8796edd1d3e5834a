"""Files the package reads at run time that live outside `bridge/` in the repository.

A checkout reads them in place (`schemas/`, `examples/`); a wheel carries them inside the package as
`bridge/contract/` and `bridge/examples/` (setup.py maps them), so an installed bridge finds them too.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(in_package: str, in_repository: str) -> Path:
    """The directory as a wheel installs it, else where a checkout keeps it."""
    installed = _PACKAGE / in_package
    return installed if installed.is_dir() else _PACKAGE.parent / in_repository


#: The published AMQP contract: a JSON Schema per message body, and the AsyncAPI document.
CONTRACT_DIR: Path = _shipped("contract", "schemas")
#: The example consumers (`make demo` runs the echo agent).
EXAMPLES_DIR: Path = _shipped("examples", "examples")
