"""The expression language's post-lexer, apart from the parser so that gen_parser can build the tables
without importing the parser they are for."""


class DropNewlinesInBrackets:
    """Post-lexer: a newline inside (...) or [...] continues the statement, as in Python."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth:
                continue
            yield tok
