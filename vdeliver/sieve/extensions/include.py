"""RFC 6609 include: include [:personal|:global] [:once] [:optional] "name",
return, global, and the "global." variable namespace.

Included scripts are fetched with the caller's loader(location, name) -> bytes
or None and compiled at compile time (so a loop or a broken script is a compile
or missing script is a compile error, as in Pigeonhole; not inside a block the
validator drops as dead, e.g. under `if false`), at most limits.max_include_depth deep and
limits.max_includes in all. At run time each included script gets its own local
variables; names declared global share run.globals.
Never: open a file itself, or accept a script name with "/" (the loader maps
names to paths).
"""
from .. import registry
from ..interpreter import Return, execute
from ..registry import STRING, STRINGS, TagSpec
from ..result import SieveRuntimeError
from . import variables

variables.namespace("global", "include")


def _shared(v):
    # state shared by the whole include tree: compiled scripts and the include count
    stack, shared = v.include_stack if v.include_stack else ((), {"cache": {}, "count": 0})
    return stack, shared


def _check(v, node):
    name = node.args[0]
    location = node.tags.get("location", "personal")
    if type(name) is not str:
        v.error(node.line, "the include command requires a constant script name")
        return
    if not name or "/" in name or name in (".", "..") or any(ord(c) < 32 for c in name):
        v.error(node.line, f"include: invalid script name '{name}'")
        return
    key = (location, name)
    stack, shared = _shared(v)
    node.data["key"] = key
    if key in stack or key == ("personal", v.name) and not stack:
        v.error(node.line, f"circular include for script '{name}'")
        return
    if max(len(stack), 1) > v.limits.max_include_depth:     # stack: the main script and the includes
        v.error(node.line, f"cannot nest includes deeper than {v.limits.max_include_depth} levels")
        return
    if key in shared["cache"]:
        node.data["script"] = shared["cache"][key]
        return
    shared["count"] += 1
    if shared["count"] > v.limits.max_includes:
        v.error(node.line, f"total number of included scripts exceeds the limit ({v.limits.max_includes})")
        return
    from ..script import CompileError, LoaderFailed, compile_script
    try:
        source = v.loader(location, name) if v.loader is not None else None
    except Exception as e:              # could not look: not a script error, the caller defers
        raise LoaderFailed() from e
    if source is None:
        if node.tags.get("optional"):
            node.data["script"] = None
            return
        v.error(node.line, f"included {location} script '{name}' does not exist")
        return
    try:
        child = compile_script(source, name=name, extensions=v.enabled, loader=v.loader, limits=v.limits,
                               include_stack=(stack + ((("personal", v.name),) if not stack else ()) + (key,),
                                              shared))
    except CompileError as e:
        v.error(node.line, f"failed to validate included script '{name}'")
        for err in e.errors:
            if len(v.errors) < registry.MAX_ERRORS:
                v.errors.append(err)
        return
    shared["cache"][key] = child
    node.data["script"] = child


def _include(run, node):
    child = node.data.get("script")
    if child is None:
        return
    once = run.ext.setdefault("include-once", set())
    key = node.data["key"]
    if node.tags.get("once"):
        if key in once:
            return
    once.add(key)
    depth = run.ext.get("include-depth", 0)
    if depth >= run.limits.max_include_depth:
        raise SieveRuntimeError(node.line, "include nesting too deep")
    saved = run.script, run.variables, run.script_name
    run.script, run.variables, run.script_name = child, {}, child.name
    run.ext["include-depth"] = depth + 1
    try:
        execute(run, child.nodes)
    except Return:
        pass
    except SieveRuntimeError as e:
        if e.script is None:
            e.script = child.name
        raise
    finally:
        run.script, run.variables, run.script_name = saved
        run.ext["include-depth"] = depth


def _return(run, node):
    raise Return()


def _global_check(v, node):
    if "variables" not in v.required:
        v.error(node.line, "the global command requires the variables extension")
    names = v.data.setdefault("globals", set())
    for name in node.args[0]:
        if type(name) is not str or not variables._NAME.fullmatch(name):
            v.error(node.line, f"invalid variable name '{getattr(name, 'source', name)}'")
            continue
        names.add(name.lower())


registry.command("include", extension="include", positional=(STRING,), run=_include, check=_check,
                 tags={"personal": TagSpec("personal", group="location", key="location", value="personal"),
                       "global": TagSpec("global", group="location", key="location", value="global"),
                       "once": TagSpec("once"), "optional": TagSpec("optional")})
registry.command("return", extension="include", run=_return)
registry.command("global", extension="include", positional=(STRINGS,), run=lambda run, node: None,
                 check=_global_check)
