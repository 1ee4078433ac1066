"""Package shape: public names, no I/O or project imports, slotted packet classes."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import instamsg.mqtt as mqtt
from instamsg.mqtt import packets

PACKAGE_DIRECTORY = Path(mqtt.__file__).parent


def test_all_names_resolve_and_are_unique() -> None:
    assert len(mqtt.__all__) == len(set(mqtt.__all__))
    for name in mqtt.__all__:
        assert hasattr(mqtt, name), name


@pytest.mark.parametrize("module_path", sorted(PACKAGE_DIRECTORY.glob("*.py")), ids=lambda path: path.name)
def test_imports_only_the_standard_library_and_itself(module_path: Path) -> None:
    tree = ast.parse(module_path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots = [node.module.split(".")[0]]
        else:
            continue
        for root in roots:
            assert root in sys.stdlib_module_names or root == "__future__", (module_path.name, root)
            assert root not in {"asyncio", "socket", "selectors", "ssl", "threading"}, (
                module_path.name,
                root,
            )


@pytest.mark.parametrize("name", packets.__all__)
def test_packet_classes_use_slots(name: str) -> None:
    value = getattr(packets, name)
    if (
        isinstance(value, type)
        and value.__module__ == packets.__name__
        and hasattr(value, "__dataclass_fields__")
    ):
        instance_fields = {field.name: None for field in value.__dataclass_fields__.values()}
        assert "__slots__" in vars(value)
        assert not hasattr(value(**_defaults(value, instance_fields)), "__dict__")


def _defaults(cls: type, fields: dict[str, None]) -> dict[str, object]:
    required = {
        "topic": "t",
        "payload": b"",
        "packet_id": 1,
        "subscriptions": [],
        "reason_codes": [],
        "filters": [],
    }
    return {name: value for name, value in required.items() if name in fields}
