"""Sieve parser (RFC 5228 §8.2): tokens -> an AST of commands, tests and arguments.

    command   = identifier arguments (";" / block)
    arguments = *argument [ test / test-list ]
    argument  = string-list / number / tag
    test      = identifier arguments

Block and test nesting are capped (Pigeonhole's sieve-limits.h: 32 each, which
Pigeonhole reaches at the 32nd level), so a hostile script cannot exhaust the
Python stack.

Never: look at command names (that is the validator's job) or recurse without a
depth check. Raises: ParseError (line, message).
"""
from .lexer import EOF, IDENT, NUMBER, PUNCT, STRING, TAG

MAX_NESTING = 32


class ParseError(Exception):
    def __init__(self, line, message):
        super().__init__(message)
        self.line = line
        self.message = message


class _Value:
    __slots__ = ()

    def __eq__(self, other):
        return type(self) is type(other) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(repr(getattr(self, k)) for k in self.__slots__)})"


class Tag(_Value):
    __slots__ = ("name", "line")

    def __init__(self, name, line):
        self.name, self.line = name, line


class Number(_Value):
    __slots__ = ("value", "line")

    def __init__(self, value, line):
        self.value, self.line = value, line


class String(_Value):
    __slots__ = ("value", "line", "multiline")

    def __init__(self, value, line, multiline=False):
        self.value, self.line, self.multiline = value, line, multiline


class StringList(_Value):
    __slots__ = ("values", "line")

    def __init__(self, values, line):
        self.values, self.line = values, line


class Test(_Value):
    """name arguments [test / test-list]; test_list: written as "( ... )"."""
    __slots__ = ("name", "line", "args", "tests", "test_list")

    def __init__(self, name, line):
        self.name, self.line = name, line
        self.args, self.tests, self.test_list = [], [], False


class Command(_Value):
    __slots__ = ("name", "line", "args", "tests", "test_list", "block")

    def __init__(self, name, line):
        self.name, self.line = name, line
        self.args, self.tests, self.test_list = [], [], False
        self.block = None


def parse(tokens, max_nesting=MAX_NESTING):
    return _Parser(tokens, max_nesting).script()


class _Parser:
    def __init__(self, tokens, max_nesting):
        self.tokens = tokens
        self.pos = 0
        self.max_nesting = max_nesting

    def peek(self):
        return self.tokens[self.pos]

    def take(self):
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def script(self):
        commands = self.commands(0)
        tok = self.peek()
        if tok.kind != EOF:
            raise ParseError(tok.line, f"unexpected {tok.describe()} found at (the) toplevel")
        return commands

    def commands(self, depth):
        out = []
        while True:
            tok = self.peek()
            if tok.kind != IDENT:
                return out
            out.append(self.command(depth))

    def command(self, depth):
        name_tok = self.take()
        cmd = Command(name_tok.value, name_tok.line)
        cmd.args, cmd.tests, cmd.test_list = self.arguments(depth)
        tok = self.take()
        if (tok.kind is PUNCT and tok.value == ";"):
            return cmd
        if (tok.kind is PUNCT and tok.value == "{"):
            if depth + 1 >= self.max_nesting:          # Pigeonhole: 31 levels are fine, 32 are not
                # reported where the too-deep block's content starts, as Pigeonhole does
                raise ParseError(self.peek().line, f"cannot nest command blocks deeper than "
                                                   f"{self.max_nesting} levels")
            cmd.block = self.commands(depth + 1)
            end = self.take()
            if not (end.kind is PUNCT and end.value == "}"):
                raise ParseError(end.line, f"expected command or end of block '}}', but found {end.describe()}")
            return cmd
        raise ParseError(tok.line, f"expected end of command ';' or the beginning of a compound block '{{', "
                                   f"but found {tok.describe()}")

    def arguments(self, depth, test_depth=0):
        # the hot loop of the parser: token kinds are the lexer's constants, compared by identity
        args = []
        toks, pos = self.tokens, self.pos
        while True:
            tok = toks[pos]
            kind = tok.kind
            if kind is STRING:
                pos += 1
                args.append(String(tok.value, tok.line, tok.multiline))
            elif kind is TAG:
                pos += 1
                args.append(Tag(tok.value, tok.line))
            elif kind is NUMBER:
                pos += 1
                args.append(Number(tok.value, tok.line))
            elif kind is PUNCT and tok.value == "[":
                self.pos = pos
                args.append(self.string_list())
                pos = self.pos
            else:
                break
        self.pos = pos
        if tok.kind is IDENT:
            return args, [self.test(depth, test_depth + 1)], False
        if (tok.kind is PUNCT and tok.value == "("):
            self.pos += 1
            tests = [self.test(depth, test_depth + 1)]
            while True:
                tok = self.take()
                if (tok.kind is PUNCT and tok.value == ")"):
                    return args, tests, True
                if not (tok.kind is PUNCT and tok.value == ","):
                    raise ParseError(tok.line, f"expected ',' or end of test list ')', but found {tok.describe()}")
                tests.append(self.test(depth, test_depth + 1))
        return args, [], False

    def string_list(self):
        start = self.take()
        values = []
        while True:
            tok = self.take()
            if tok.kind != STRING:
                raise ParseError(tok.line, f"expected string in string list, but found {tok.describe()}")
            values.append(tok.value)
            tok = self.take()
            if (tok.kind is PUNCT and tok.value == "]"):
                return StringList(values, start.line)
            if not (tok.kind is PUNCT and tok.value == ","):
                raise ParseError(tok.line, f"expected ',' or end of string list ']', but found {tok.describe()}")

    def test(self, depth, test_depth):
        tok = self.take()
        if tok.kind != IDENT:
            raise ParseError(tok.line, f"expected test command, but found {tok.describe()}")
        if test_depth >= self.max_nesting:
            raise ParseError(tok.line, f"cannot nest tests deeper than {self.max_nesting} levels")
        test = Test(tok.value, tok.line)
        test.args, test.tests, test.test_list = self.arguments(depth, test_depth)
        return test
