"""filtering.py without a mailbox: what the delivery core makes of scripts and results."""
import time

from vdeliver import filtering, sieve, sievescripts


def script_of(source, name="main"):
    return sievescripts.Script("personal", f"/home/{name}.sieve", source, identity=None)


def test_included_scripts_share_one_size_budget():
    """Compiling is not under sieve_max_cpu_time: 60 includes of 0.9 MB once held one
    delivery for minutes. All included scripts together get sieve_max_script_size."""
    big = b"if false {\n" + b"keep;\n" * 150_000 + b"}\n"  # 0.9 MB, a valid script
    names = [f"part{n}" for n in range(60)]
    main = (b'require "include";\n'
            + b"".join(b'include :personal "%s";\n' % name.encode() for name in names))
    asked = []

    def loader(location, name):
        asked.append(name)
        return big
    started = time.process_time()
    compiled = filtering.compile_script(script_of(main), None, loader, sieve.Limits(), False)
    assert isinstance(compiled, sieve.CompileError), compiled
    assert "exceed sieve_max_script_size in all" in compiled.errors[0]
    assert len(asked) == 2  # the second include is over the 1M budget: no more compiling
    assert time.process_time() - started < 30


def test_small_includes_compile():
    def loader(location, name):
        return b'keep;\n'
    main = b'require "include";\ninclude :personal "a";\ninclude :personal "b";\n'
    compiled = filtering.compile_script(script_of(main), None, loader, sieve.Limits(), False)
    assert not isinstance(compiled, sieve.CompileError), compiled
