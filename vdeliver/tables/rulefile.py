"""The rule-file grammar regexp: and pcre: share (dict_regexp.c, dict_pcre.c).

A file is read as postmap source (textfile.numbered_logical_lines(): `#`
comments and blank lines skipped, a line starting with whitespace continues
the one before). Each logical line, trailing whitespace removed, is one of:
  IF <pattern>     the rules up to the matching ENDIF apply only when the
                   pattern matches (`if !<pattern>`: when it does not); nesting;
                   text after the pattern is ignored, as Postfix does
  ENDIF            closes the innermost IF; one without an IF is ignored
                   (Postfix warns); an IF left open runs to the end of the file
  <pattern> result a rule: the first whose pattern holds gives the result
IF and ENDIF are words in any case, followed by the end of the line or a
character that is not an ASCII letter or digit (ISALNUM in the C locale). A
rule starts with a character that is not an ASCII letter or digit (the
pattern's delimiter, which must be one byte, or `!`). Anything else is a
ConfigError.

A dialect (regexp.py, pcre.py) translates what a pattern means: its
parse_match(line, where) returns (condition, result) for a rule line and its
parse_if(text, where) the condition of an IF. A condition is a function of
the subject that returns None when the pattern does not hold, else what the
result is expanded from (the match object, or True for a negated pattern).
first_rule() walks the rules for one subject.

Never: let a rule or an IF that a dialect refused load silently (its
ConfigError goes through: the mail defers); never run a rule inside an IF
whose condition failed.
"""
from vdeliver.errors import ConfigError
from vdeliver.tables.textfile import ISSPACE, numbered_logical_lines

MATCH, IF, ENDIF = "match", "if", "endif"


class Rule:
    __slots__ = ("kind", "condition", "result", "endif_index")

    def __init__(self, kind, condition=None, result=None):
        self.kind = kind            # MATCH, IF or ENDIF
        self.condition = condition  # subject -> None, or what result is expanded from
        self.result = result        # the dialect's parsed result (MATCH only)
        self.endif_index = None     # IF: the index of its ENDIF; None: to the end of the file


def parse(text, spec, parse_match, parse_if, unrecognized="unrecognized line"):
    """The rules of a pattern file, with each IF's ENDIF found."""
    rules, open_ifs = [], []
    for number, line in numbered_logical_lines(text):
        line = line.rstrip(ISSPACE)
        where = f"{spec}, line {number}"
        if is_word(line, "if"):
            open_ifs.append(len(rules))
            rules.append(Rule(IF, parse_if(line[2:].lstrip(ISSPACE), where)))
        elif is_word(line, "endif"):
            if open_ifs:
                rules[open_ifs.pop()].endif_index = len(rules)
                rules.append(Rule(ENDIF))
        elif not is_alnum(line[0]):
            rules.append(Rule(MATCH, *parse_match(line, where)))
        else:
            raise ConfigError(f"{where}: {unrecognized} {line[:40]!r}")
    return rules


def is_alnum(ch):
    return ch.isascii() and ch.isalnum()


def is_word(line, word):
    """`line` starts with `word` (any case) and no ASCII letter or digit follows it."""
    end = len(word)
    return line[:end].lower() == word and not (len(line) > end and is_alnum(line[end]))


def delimiter(ch, where):
    """A pattern's delimiter: one byte. Postfix reads the file as bytes; of a character that
    UTF-8 encodes in several it would take the first byte, then skip the rule (a warning).
    A byte that is not UTF-8 (surrogate-escaped, U+DC80..U+DCFF) is one byte: accepted."""
    if not ch.isascii() and not "\udc80" <= ch <= "\udcff":
        raise ConfigError(f"{where}: the pattern delimiter {ch!r} is not a single byte")
    return ch


def first_rule(rules, subject):
    """(rule, what its condition returned) of the first rule that holds, or (None, None)."""
    index, count = 0, len(rules)
    while index < count:
        rule = rules[index]
        if rule.kind is MATCH:
            found = rule.condition(subject)
            if found is not None:
                return rule, found
        elif rule.kind is IF and rule.condition(subject) is None:
            if rule.endif_index is None:
                return None, None
            index = rule.endif_index  # past the matching ENDIF
        index += 1
    return None, None


def negated(condition):
    """The condition of `!pattern`: holds (True) exactly when `condition` does not."""
    def holds_when_not(subject):
        return True if condition(subject) is None else None
    return holds_when_not
