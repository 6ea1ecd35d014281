"""A Bash command line split into the simple commands it would run, or refused.

The agent's Bash tool hands a whole command line to a shell. Talon judges it one simple
command at a time: `a && b | c > f` is the programs `a`, `b`, `c` (each a `shell.exec` of
its absolute program path) and the write of `f`. The tokenizer here follows POSIX quoting
(single and double quotes, backslashes, line continuations) and treats an unquoted newline as
`;`. Whatever it cannot judge with confidence raises `Unparseable` instead of guessing:
expansions (`$…`, `$(…)`, backticks), here-documents, subshells and groups, control flow,
environment assignments (`X=y cmd`, `env X=y cmd`: they can change which program runs),
globs or braces in a program name or a redirection target, `eval`/`source`, privilege and
namespace wrappers. Wrappers that run another program (`env`, `nice`, `timeout`, `xargs`,
`find -exec`, `sh -c`, `bash -lc`, `exec`, `command`) are unwrapped and the program they run
is judged too.
"""

from __future__ import annotations

import os

MAX_DEPTH = 4
MAX_COMMANDS = 64

#: paths a redirection may name without touching a file
NULL_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"})
SEPARATORS = ("&&", "||", "|&", ";;", ";", "&", "|", "(", ")")
REDIRECTIONS = ("&>>", "<<<", "&>", ">>", ">|", "<<", "<>", "<&", ">&", "<", ">")
WRITE_REDIRECTIONS = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})
KEYWORDS = frozenset(
    "if then else elif fi for while until do done case esac select function [[ ]] { } "
    "coproc".split()
)
#: builtins that change the shell itself or run text as code: never judged, refused
OPAQUE_BUILTINS = frozenset(
    "eval source . export unset set alias unalias trap declare typeset local readonly shopt "
    "enable hash read mapfile readarray ulimit umask let fc history bind complete getopts "
    "shift wait jobs fg bg disown suspend logout return exit break continue".split()
)
NOOP_BUILTINS = frozenset({"true", "false", ":"})
#: run a program with other privileges or in another root/namespace: never judged, refused
PRIVILEGE_WRAPPERS = frozenset(
    "sudo doas su pkexec runuser chroot unshare nsenter setpriv capsh systemd-run "
    "flatpak-spawn busybox".split()
)
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh"})
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def is_assignment(word: str) -> bool:
    """`NAME=…` or `NAME+=…` (NAME: `[A-Za-z_][A-Za-z0-9_]*`), what bash takes as an
    assignment before a command (without `re`: the hook's start-up is its cost)."""
    name, eq, _ = word.partition("=")
    if not eq:
        return False
    if name.endswith("+"):
        name = name[:-1]
    return bool(name) and not name[0].isdigit() and NAME_CHARS.issuperset(name)


class Unparseable(ValueError):
    """The command line cannot be judged with confidence; the message says why."""


class Word:
    """One shell word after quote removal, with what the unquoted parts may expand to."""

    __slots__ = ("brace", "glob", "quoted_at", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        #: an unquoted glob character (`*`, `?`, `[`) appears
        self.glob = False
        #: an unquoted brace appears (brace expansion) and the word is not `{}`
        self.brace = False
        #: position of the first quoted or escaped character (None: fully unquoted)
        self.quoted_at: int | None = None


class SimpleCommand:
    """One program run: `argv[0]` is the absolute program path when it could be resolved."""

    __slots__ = ("argv", "cwd", "patterns", "reads", "touches", "writes")

    def __init__(
        self,
        argv: list[str],
        cwd: str,
        reads: list[str] | None = None,
        writes: list[str] | None = None,
    ) -> None:
        self.argv = argv
        self.cwd = cwd
        self.reads: list[str] = [] if reads is None else reads
        self.writes: list[str] = [] if writes is None else writes
        #: every path-looking argument, tilde- and glob-expanded, for self-protection
        self.touches: list[str] = []
        #: the arguments that are glob patterns (absolute), for self-protection
        self.patterns: list[str] = []


def which(name: str, path: str) -> str | None:
    """The first executable file called `name` on `path` (as the shell's PATH search)."""
    for d in path.split(os.pathsep):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


# --------------------------------------------------------------------------- tokens


def tokenize(line: str) -> list[tuple[str, object]]:
    """Tokens `("word", Word)`, `("op", str)`, `("redir", (op, fd))`; raises Unparseable."""
    tokens: list[tuple[str, object]] = []
    chars: list[str] | None = None
    word = Word("")
    i, n = 0, len(line)

    def end() -> None:
        nonlocal chars, word
        if chars is not None:
            word.text = "".join(chars)
            if word.brace and word.text == "{}":
                word.brace = False
            tokens.append(("word", word))
        chars, word = None, Word("")

    def start() -> list[str]:
        nonlocal chars
        if chars is None:
            chars = []
        return chars

    def quoted(buf: list[str]) -> None:
        if word.quoted_at is None:
            word.quoted_at = len(buf)

    while i < n:
        c = line[i]
        if c in " \t":
            end()
            i += 1
        elif c == "\n":
            end()
            tokens.append(("op", ";"))
            i += 1
        elif c == "#" and chars is None:
            while i < n and line[i] != "\n":
                i += 1
        elif c == "\\":
            if i + 1 >= n:
                raise Unparseable("the command ends with a lone backslash")
            if line[i + 1] == "\n":
                i += 2
                continue
            buf = start()
            quoted(buf)
            buf.append(line[i + 1])
            i += 2
        elif c == "'":
            j = line.find("'", i + 1)
            if j < 0:
                raise Unparseable("an unterminated single quote")
            buf = start()
            quoted(buf)
            buf.extend(line[i + 1 : j])
            i = j + 1
        elif c == '"':
            buf = start()
            quoted(buf)
            i += 1
            while True:
                if i >= n:
                    raise Unparseable("an unterminated double quote")
                d = line[i]
                if d == '"':
                    i += 1
                    break
                if d in "$`":
                    raise Unparseable(f"an expansion ({d}) inside double quotes")
                if d == "\\" and i + 1 < n and line[i + 1] in '$`"\\\n':
                    if line[i + 1] != "\n":
                        buf.append(line[i + 1])
                    i += 2
                    continue
                buf.append(d)
                i += 1
        elif c == "$":
            raise Unparseable("a $ expansion (variable, $(…) or arithmetic)")
        elif c == "`":
            raise Unparseable("a backtick command substitution")
        elif c in "<>" or (c == "&" and line.startswith(("&>", "&>>"), i)):
            op = next(r for r in REDIRECTIONS if line.startswith(r, i))
            if op in ("<<", "<<<"):
                raise Unparseable("a here-document or here-string")
            if line.startswith(("<(", ">("), i):
                raise Unparseable("a process substitution")
            fd = None
            if chars is not None and word.quoted_at is None and "".join(chars).isdigit():
                fd, chars, word = "".join(chars), None, Word("")
            end()
            tokens.append(("redir", (op, fd)))
            i += len(op)
        elif c in "&|;()":
            end()
            op = next(s for s in SEPARATORS if line.startswith(s, i))
            tokens.append(("op", op))
            i += len(op)
        else:
            buf = start()
            if c in "*?[":
                word.glob = True
            elif c in "{}":
                word.brace = True
            buf.append(c)
            i += 1
    end()
    return tokens


# --------------------------------------------------------------------------- commands


def _expand_tilde(w: Word, home: str) -> str:
    text = w.text
    if text.startswith("~") and (w.quoted_at is None or w.quoted_at > 0):
        head, sep, rest = text.partition("/")
        if head != "~":
            raise Unparseable(f"a ~user expansion ({head})")
        return home + (sep + rest if sep else "")
    return text


def _path(text: str, cwd: str) -> str:
    """`text` against `cwd`, not normalized: `link/../x` is resolved by the engine the way the
    kernel will (through the link), never lexically."""
    return os.path.join(cwd, text) if text else cwd


class _Parser:
    def __init__(self, cwd: str, env: dict[str, str]) -> None:
        self.env = env
        self.home = env.get("HOME") or os.path.expanduser("~")
        self.commands: list[SimpleCommand] = []
        self.cwd = cwd

    # one line (also the string of `sh -c`)
    def line(self, text: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise Unparseable("shells nested too deeply")
        tokens = tokenize(text)
        group: list[tuple[str, object]] = []
        piped = False
        last: object = ";"
        for kind, value in tokens:
            if kind != "op":
                group.append((kind, value))
                last = None
                continue
            if value in ("(", ")", ";;"):
                raise Unparseable("a subshell, group or case branch")
            next_piped = value in ("|", "|&")
            if group:
                self.simple(group, depth, in_pipeline=piped or next_piped)
            elif value != ";":
                raise Unparseable(f"an empty command before {value!r}")
            group, piped, last = [], next_piped, value
        if last in ("&&", "||", "|", "|&"):
            raise Unparseable(f"the line ends with {last!r}")
        if group:
            self.simple(group, depth, in_pipeline=piped)
        if len(self.commands) > MAX_COMMANDS:
            raise Unparseable(f"more than {MAX_COMMANDS} commands")

    def simple(self, group: list[tuple[str, object]], depth: int, *, in_pipeline: bool) -> None:
        words: list[Word] = []
        cmd = SimpleCommand(argv=[], cwd=self.cwd)
        it = iter(group)
        for kind, value in it:
            if kind == "word":
                assert isinstance(value, Word)
                words.append(value)
                continue
            assert isinstance(value, tuple)
            op = str(value[0])
            target = next(it, None)
            if target is None or target[0] != "word":
                raise Unparseable(f"a redirection {op!r} without a target")
            tw = target[1]
            assert isinstance(tw, Word)
            if op in ("<&", ">&") and (tw.text.isdigit() or tw.text == "-"):
                continue
            if tw.glob or tw.brace:
                raise Unparseable(f"a pattern as a redirection target ({tw.text!r})")
            path = _path(_expand_tilde(tw, self.home), self.cwd)
            if path in NULL_TARGETS or tw.text in NULL_TARGETS:
                continue
            (cmd.writes if op in WRITE_REDIRECTIONS or op == ">&" else cmd.reads).append(path)
        self.words(words, cmd, depth, in_pipeline=in_pipeline)

    def words(
        self, words: list[Word], cmd: SimpleCommand, depth: int, *, in_pipeline: bool
    ) -> None:
        while words and words[0].quoted_at is None and words[0].text in ("!", "time"):
            words = words[1:]
            while words and words[0].text == "-p":
                words = words[1:]
        if not words:
            if cmd.writes or cmd.reads:
                self.commands.append(cmd)
            return
        for w in words:
            if w.brace:
                raise Unparseable(f"a brace expansion ({w.text!r})")
        first = words[0]
        if is_assignment(first.text) and (
            first.quoted_at is None or first.quoted_at > first.text.index("=")
        ):
            raise Unparseable(
                f"an environment assignment ({first.text.split('=')[0]}=…) changes how the "
                "command runs"
            )
        if first.glob:
            raise Unparseable(f"a pattern as the program name ({first.text!r})")
        name = _expand_tilde(first, self.home)
        unquoted = first.quoted_at is None
        if unquoted and name in KEYWORDS:
            raise Unparseable(f"shell control flow ({name})")
        if name in OPAQUE_BUILTINS:
            raise Unparseable(f"the shell builtin {name!r} cannot be judged")
        args = [self._arg(w, cmd) for w in words[1:]]
        if name == "cd":
            self._cd(args, cmd, in_pipeline)
            return
        if name in NOOP_BUILTINS:
            if cmd.writes or cmd.reads:
                self.commands.append(cmd)
            return
        base = os.path.basename(name)
        if base in PRIVILEGE_WRAPPERS:
            raise Unparseable(f"{base} runs a program with other privileges or another root")
        if name in ("exec", "command", "builtin"):
            rest = words[1:]
            if rest and rest[0].text.startswith("-"):
                raise Unparseable(f"{name} with options")
            inner = SimpleCommand(argv=[], cwd=self.cwd, reads=cmd.reads, writes=cmd.writes)
            self.words(rest, inner, depth, in_pipeline=in_pipeline)
            return
        cmd.argv = [self.program(name), *args]
        self.commands.append(cmd)
        if base in SHELLS:
            self.commands.pop()
            self._shell(base, words[1:], args, cmd, depth)
        elif base == "env":
            self._env(words[1:], depth, in_pipeline)
        elif base in (
            "nice",
            "timeout",
            "stdbuf",
            "time",
            "ionice",
            "chrt",
            "taskset",
            "nohup",
            "setsid",
        ):
            self._wrapper(base, words[1:], depth, in_pipeline)
        elif base == "xargs":
            self._xargs(words[1:], depth, in_pipeline)
        elif base == "find":
            self._find(words[1:], cmd, depth, in_pipeline)

    # ------------------------------------------------------------------ pieces

    def _arg(self, w: Word, cmd: SimpleCommand) -> str:
        text = _expand_tilde(w, self.home)
        value = text.split("=", 1)[1] if text.startswith("-") and "=" in text else text
        if value and not value.startswith("-"):
            path = _path(value, self.cwd)
            if w.glob:
                import glob  # only when an argument is a pattern

                cmd.patterns.append(path)
                cmd.touches.extend(glob.glob(path) or [path])
            else:
                cmd.touches.append(path)
        return text

    def program(self, name: str) -> str:
        """The program the shell would run for `name`: a path as written (absolute, or
        relative to the tracked cwd), a bare name looked up on PATH (kept bare if missing:
        the policy then refuses it)."""
        if "/" in name:
            if name.startswith("/"):
                return name
            if ".." in name.split("/"):
                raise Unparseable(f"a relative program path with '..' ({name!r})")
            return os.path.join(self.cwd, *[p for p in name.split("/") if p not in ("", ".")])
        found = which(name, self.env.get("PATH", os.defpath))
        if found is None:
            return name
        return found if found.startswith("/") else os.path.join(self.cwd, found)

    def _cd(self, args: list[str], cmd: SimpleCommand, in_pipeline: bool) -> None:
        if in_pipeline:
            raise Unparseable("cd inside a pipeline")
        if len(args) > 1 or (args and args[0].startswith("-")):
            raise Unparseable("cd with options or several arguments")
        # bash's cd is logical (-L): `..` is removed lexically, as normpath does
        target = os.path.normpath(_path(args[0], self.cwd)) if args else self.home
        if not os.path.isdir(target):
            raise Unparseable(f"cd to {target}, which is not a directory now")
        self.cwd = target
        cmd.touches.append(target)
        cmd.argv = []
        self.commands.append(cmd)

    def _shell(
        self, base: str, words: list[Word], args: list[str], cmd: SimpleCommand, depth: int
    ) -> None:
        i = 0
        command: str | None = None
        while i < len(words):
            a = words[i].text
            if a in ("-o", "+o", "-O", "+O"):
                i += 2
                continue
            if a in ("--login", "--norc", "--noprofile", "--posix", "--", "-"):
                i += 1
                if a in ("--", "-"):
                    break
                continue
            if a.startswith("--"):
                raise Unparseable(f"{base} option {a}")
            if a.startswith(("-", "+")) and len(a) > 1:
                if "c" in a[1:]:
                    if i + 1 >= len(words):
                        raise Unparseable(f"{base} -c without a command")
                    command = words[i + 1].text
                    break
                i += 1
                continue
            break
        if command is None:
            raise Unparseable(f"{base} without -c runs a script or its input, not a command")
        if cmd.writes or cmd.reads:
            self.commands.append(SimpleCommand([], self.cwd, cmd.reads, cmd.writes))
        saved = self.cwd
        self.line(command, depth + 1)
        self.cwd = saved

    def _inner(self, words: list[Word], depth: int, in_pipeline: bool) -> None:
        if words:
            saved = self.cwd
            self.words(words, SimpleCommand([], self.cwd), depth, in_pipeline=in_pipeline)
            self.cwd = saved

    def _env(self, words: list[Word], depth: int, in_pipeline: bool) -> None:
        i = 0
        while i < len(words):
            a = words[i].text
            if a in ("-i", "--ignore-environment", "-", "-0", "--null"):
                i += 1
            elif a in ("-u", "--unset"):
                i += 2
            elif a.startswith(("--unset=", "-u")) and a not in ("-u",):
                i += 1
            elif a == "--":
                i += 1
                break
            elif a.startswith("-"):
                raise Unparseable(f"env option {a}")
            elif "=" in a:
                raise Unparseable(
                    f"env sets {a.split('=')[0]}=…, which changes how the command runs"
                )
            else:
                break
        self._inner(words[i:], depth, in_pipeline)

    def _wrapper(self, base: str, words: list[Word], depth: int, in_pipeline: bool) -> None:
        with_value = {
            "nice": {"-n", "--adjustment"},
            "timeout": {"-s", "--signal", "-k", "--kill-after"},
            "stdbuf": {"-i", "-o", "-e", "--input", "--output", "--error"},
            "time": {"-f", "--format", "-o", "--output"},
            "ionice": {"-c", "-n", "--class", "--classdata"},
            "chrt": set(),
            "taskset": set(),
            "nohup": set(),
            "setsid": set(),
        }[base]
        i = 0
        while i < len(words) and words[i].text.startswith("-") and words[i].text != "--":
            a = words[i].text
            if base == "time" and a in ("-o", "--output"):
                raise Unparseable("time -o writes a file")
            i += 2 if a in with_value else 1
        if i < len(words) and words[i].text == "--":
            i += 1
        if base == "timeout" or base in ("chrt", "taskset"):
            i += 1  # the duration, priority or mask
        self._inner(words[i:], depth, in_pipeline)

    def _xargs(self, words: list[Word], depth: int, in_pipeline: bool) -> None:
        with_value = {"-I", "-i", "-n", "-P", "-d", "-L", "-l", "-s", "-E", "-e", "--delimiter"}
        i = 0
        while i < len(words) and words[i].text.startswith("-"):
            a = words[i].text
            if a in ("-a", "--arg-file") or a.startswith("-a"):
                raise Unparseable("xargs reading a file of arguments")
            if a == "--":
                i += 1
                break
            i += 2 if a in with_value else 1
        rest = words[i:]
        self._inner(rest or [Word("echo")], depth, in_pipeline)

    def _find(self, words: list[Word], cmd: SimpleCommand, depth: int, in_pipeline: bool) -> None:
        i = 0
        while i < len(words):
            a = words[i].text
            if a in ("-exec", "-execdir", "-ok", "-okdir"):
                j = i + 1
                while j < len(words) and words[j].text not in (";", "+"):
                    j += 1
                if j >= len(words):
                    raise Unparseable(f"find {a} without its terminating ';' or '+'")
                inner = [w for w in words[i + 1 : j] if w.text != "{}"] or []
                self._inner(inner, depth, in_pipeline)
                i = j + 1
            elif a in ("-fprint", "-fprint0", "-fprintf", "-fls"):
                if i + 1 >= len(words):
                    raise Unparseable(f"find {a} without a file")
                cmd.writes.append(_path(_expand_tilde(words[i + 1], self.home), self.cwd))
                i += 2
            else:
                i += 1


def parse_command_line(
    line: str, cwd: str, env: dict[str, str] | None = None
) -> list[SimpleCommand]:
    """The simple commands `line` runs, in order (programs resolved, redirection targets
    and path arguments made absolute against the tracked working directory); raises
    Unparseable for anything it cannot judge with confidence."""
    if not isinstance(line, str) or not line.strip():
        raise Unparseable("an empty command")
    if "\x00" in line:
        raise Unparseable("a NUL byte")
    parser = _Parser(cwd, dict(os.environ) if env is None else env)
    parser.line(line, 0)
    return parser.commands
