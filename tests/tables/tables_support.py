"""Prerequisite checks of the table tests (skip outside CI, fail in CI: support.require),
and a table built by the real postmap (tests/postfix_config.py builds its command)."""
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


def postmap_table(directory, postfix, kind, name, lines, package="postfix"):
    """`postmap -c DIR kind:directory/name` of `lines` (postfix: a PostfixConfig);
    returns the source path (the table's name)."""
    require_type(postfix.supported, kind, package)
    source = directory / name
    source.write_text("".join(lines))
    corpus.cool(source)
    postfix.build(kind, source)
    return source
