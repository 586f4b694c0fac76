"""Prerequisite checks of the table tests (skip outside CI, fail in CI: support.require)."""
from support import require


def require_type(types, table_type, package):
    require(table_type in types, f"postmap lacks {table_type}: (install {package};"
            " scripts/setup-databases does)")


def require_module(name, extra):
    try:
        __import__(name)
    except ImportError:
        require(False, f"the {name} module is missing (pip install vdeliver[{extra}])")
