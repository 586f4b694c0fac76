"""Prerequisite checks of the table tests (skip outside CI, fail in CI: support.require),
and a table built by the real postmap."""
import subprocess

import corpus
from support import require


def require_type(types, table_type, package):
    require(table_type in types, f"postmap lacks {table_type}: (install {package};"
            " scripts/setup-databases does)")


def require_module(name, extra):
    try:
        __import__(name)
    except ImportError:
        require(False, f"the {name} module is missing (pip install vdeliver[{extra}])")


def postmap_table(directory, postmap_types, kind, name, lines, package="postfix"):
    """`postmap kind:directory/name` of `lines`; returns the source path (the table's name)."""
    require_type(postmap_types, kind, package)
    source = directory / name
    source.write_text("".join(lines))
    corpus.cool(source)
    subprocess.run([corpus.POSTMAP, f"{kind}:{source}"], check=True)
    return source
