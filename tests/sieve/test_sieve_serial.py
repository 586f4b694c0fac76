"""sieve/serial.py, the compile cache's text: over the whole differential corpus, a
script that dump() stores runs from load()'s copy with the same outcome as the
compiled one, and any text load() was not given by dump() is a ValueError."""
import pytest

import adapter
import corpus_sieve
import oracle
from vdeliver import sieve
from vdeliver.sieve import serial


def compiled_of(case):
    extensions = sieve.parse_extensions_setting(
        case.extensions if case.extensions is not None else oracle.DEFAULT_EXTENSIONS)
    settings = adapter.settings_for(case)
    limits = adapter.limits_for(settings)
    try:
        script = sieve.compile(case.script, name=oracle.SCRIPT_NAME, extensions=extensions,
                               loader=adapter.loader_for(case), limits=limits)
    except sieve.CompileError as error:
        script = error
    return script, extensions, settings, limits


def outcome(case, script, settings, limits):
    if isinstance(script, sieve.CompileError):
        return ("compile-error", script.errors)
    envelope = sieve.Envelope(sender=case.sender, recipient=case.recipient,
                              original_recipient=case.original_recipient or case.recipient, auth="")
    result = sieve.run(script, sieve.Message.from_bytes(case.message), envelope,
                       environment=dict(adapter.ENVIRONMENT), limits=limits, settings=settings)
    return (result.actions, result.implicit_keep, result.errors, result.keep_flags, result.warnings)


def test_every_stored_script_of_the_corpus_runs_as_the_compiled_one():
    stored, differ = 0, []
    for case in corpus_sieve.CASES:
        script, extensions, settings, limits = compiled_of(case)
        text = serial.dump(script)
        if text is None:        # not plain (variables, regex, include...): compiled every time
            continue
        stored += 1
        enabled = sieve.default_extensions() if extensions is None else frozenset(extensions)
        copy = serial.load(text, enabled)
        if serial.dump(copy) != text or outcome(case, copy, settings, limits) != outcome(
                case, script, settings, limits):
            differ.append(case.id)
    assert differ == []
    assert stored >= len(corpus_sieve.CASES) // 2, stored


ROUNDCUBE = ('require ["fileinto", "imap4flags", "relational", "comparator-i;ascii-numeric"];\n'
             '# rule:[a]\nif anyof (header :contains "subject" ["[list]", "50%\x1e\x1f"],'
             ' address :domain :is "from" "example.org", size :over 10K)\n'
             '{ fileinto :flags "\\\\Seen" "Lists"; stop; }\n'
             'elsif header :value "ge" :comparator "i;ascii-numeric" "x-priority" "3" { keep; }\n'
             'else { discard; }\n').encode()


def test_every_truncation_and_every_changed_word_is_a_value_error():
    script = sieve.compile(ROUNDCUBE)
    text = serial.dump(script)
    assert text is not None
    enabled = sieve.default_extensions()
    assert serial.dump(serial.load(text, enabled)) == text
    words = text.split(serial.US)
    for n in range(len(words)):
        with pytest.raises(ValueError):
            serial.load(serial.US.join(words[:n]), enabled)
    for n in range(len(words)):
        for bad in ("", "x", "l99999", "Nc\x1ekeep", "i", "C\x1e1"):
            changed = serial.US.join(words[:n] + [bad] + words[n + 1:])
            try:
                copy = serial.load(changed, enabled)
            except ValueError:
                continue
            assert isinstance(copy, sieve.Script)  # well formed after all: still plain data


@pytest.mark.parametrize("enabled", [frozenset(), frozenset({"imap4flags", "relational"})],
                         ids=["nothing enabled", "fileinto not enabled"])
def test_a_capability_that_is_not_enabled_is_refused(enabled):
    text = serial.dump(sieve.compile(ROUNDCUBE))
    with pytest.raises(ValueError):
        serial.load(text, enabled)


@pytest.mark.parametrize("source", [
    pytest.param(b'require "variables"; set "a" "x"; if header :is "subject" "${a}" { keep; }',
                 id="variables"),
    pytest.param(b'require ["regex"]; if header :regex "subject" "a+" { keep; }', id="regex"),
    pytest.param(b'require ["ihave"]; if ihave "fileinto" { keep; }', id="ihave"),
])
def test_scripts_with_extension_data_are_not_stored(source):
    assert serial.dump(sieve.compile(source)) is None


def test_a_compile_error_is_stored_with_its_lines():
    with pytest.raises(sieve.CompileError) as error:
        sieve.compile(b'fileinto "x";\nfoo;\n')
    copy = serial.load(serial.dump(error.value), sieve.default_extensions())
    assert isinstance(copy, sieve.CompileError) and copy.errors == error.value.errors
