"""Mutation testing for one module: small changes to its code, each of which the tests should
notice. A mutant the tests still pass on ("survived") marks behaviour no test pins down.

Run (with the project's venv, whose python runs the tests):
    .venv/bin/python scripts/mutation.py gan_engine/config.py -- tests/gan_engine/test_config.py
    .venv/bin/python scripts/mutation.py MODULE [--jobs 2] [--timeout S] [--min-score 90]
        [--lines 80-120] [--json out.json] [--list] -- PYTEST_ARGS...

Mutations (stdlib ``ast`` only): comparison operators flipped (< <=, > >=, == !=, in / not
in, is / is not), and <-> or, ``not x`` -> ``x``, numbers changed (an int n -> n + 1, a
float f -> 2f, 0.0 -> 1.0), True <-> False, ``raise ...`` -> ``pass``, ``return X`` ->
``return None`` and ``if C:`` -> ``if not (C):``. Docstrings, strings, type annotations and
``if TYPE_CHECKING:`` / ``if __name__ == "__main__":`` blocks are left alone, as is any node
whose first line carries ``# mutation: skip (why)`` (only for mutants that cannot change
behaviour: say why).

The working tree is never written: the repository's files (git ls-files: tracked and
untracked, not ignored) are copied to a temporary directory per job, each mutant is written
over the module there and pytest runs in that copy (``-x -q -p no:cacheprovider``, with the
copy first on PYTHONPATH and no bytecode written, so a mutant is never shadowed by a stale
.pyc). A test run failing, erroring or passing the timeout kills the mutant. Most of a short
run is start-up: ``--preload torch,...`` imports such modules once per job and forks each
run from there, and ``--no-plugin-autoload`` skips installed pytest plugins the tests do not
use. The unmutated
copy must pass first (its time sets the default timeout). Survivors are printed as
``file:line: description`` and the score as ``killed/total = NN.N%``; the exit status is 1
when the score is under ``--min-score``, 2 when the tests fail unmutated or cannot run.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import copy
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PRAGMA = re.compile(r"#\s*mutation:\s*skip\b")
PYTEST_FLAGS = ["-x", "-q", "-p", "no:cacheprovider"]

_FLIPPED_COMPARE: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_SYMBOL: dict[type[ast.AST], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.And: "and",
    ast.Or: "or",
}


@dataclass(frozen=True)
class Mutant:
    """One change: ``node`` is the changed node's number in _walk's order, ``choice`` which
    of its changes (the operator of a comparison that flips)."""

    node: int
    kind: str
    choice: int
    line: int
    description: str


# ---------------------------------------------------------------------------- the mutations
def _skipped_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` and ``if __name__ == "__main__":``: never run by the tests."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    if isinstance(test, ast.Name | ast.Attribute):
        name = test.id if isinstance(test, ast.Name) else test.attr
        return name == "TYPE_CHECKING"
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def _is_docstring(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


_ANNOTATION_FIELDS = {"annotation", "returns"}


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, ast.AST | None, str, int | None]]:
    """Every node that may be mutated, depth first, as (node, parent, field, index in the
    parent's list field or None): the same order for equal trees."""
    stack: list[tuple[ast.AST, ast.AST | None, str, int | None]] = [(tree, None, "", None)]
    while stack:
        node, parent, name, index = stack.pop()
        yield node, parent, name, index
        children: list[tuple[ast.AST, ast.AST | None, str, int | None]] = []
        for field, value in ast.iter_fields(node):
            if field in _ANNOTATION_FIELDS or field == "type_comment":
                continue
            if isinstance(value, ast.AST):
                children.append((value, node, field, None))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if not isinstance(item, ast.AST) or _skipped_block(item):
                        continue
                    if i == 0 and field == "body" and _is_docstring(item):
                        continue
                    children.append((item, node, field, i))
        stack.extend(reversed(children))


def _changes(node: ast.AST) -> list[tuple[str, int, str]]:
    """The (kind, choice, description) of each mutant of ``node``."""
    if isinstance(node, ast.Compare):
        out = []
        for i, op in enumerate(node.ops):
            new = _FLIPPED_COMPARE[type(op)]
            out.append(("compare", i, f"`{_SYMBOL[type(op)]}` -> `{_SYMBOL[new]}`"))
        return out
    if isinstance(node, ast.BoolOp):
        old = _SYMBOL[type(node.op)]
        return [("boolop", 0, f"`{old}` -> `{'or' if old == 'and' else 'and'}`")]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return [("not", 0, "`not x` -> `x`")]
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            return [("constant", 0, f"{value} -> {not value}")]
        if isinstance(value, int | float):
            return [("constant", 0, f"{value!r} -> {_new_number(value)!r}")]
        return []
    if isinstance(node, ast.Raise):
        return [("raise", 0, "`raise ...` -> `pass`")]
    if isinstance(node, ast.Return) and node.value is not None:
        value = node.value
        if not (isinstance(value, ast.Constant) and value.value is None):
            return [("return", 0, "`return X` -> `return None`")]
    if isinstance(node, ast.If):
        return [("if", 0, "`if C:` -> `if not (C):`")]
    return []


def _new_number(value: int | float) -> int | float:
    if isinstance(value, int):
        return value + 1
    return value * 2 if value else 1.0


def find_mutants(source: str) -> list[Mutant]:
    tree = ast.parse(source)
    lines = source.splitlines()
    mutants = []
    for number, (node, _, _, _) in enumerate(_walk(tree)):
        line = getattr(node, "lineno", 0)
        if line and PRAGMA.search(lines[line - 1]):
            continue
        for kind, choice, description in _changes(node):
            mutants.append(Mutant(number, kind, choice, line, description))
    return mutants


def _mutated_node(node: ast.AST, mutant: Mutant) -> ast.AST:
    """The node that replaces ``node`` (a changed copy)."""
    new = copy.deepcopy(node)
    if isinstance(new, ast.Compare):
        op = new.ops[mutant.choice]
        new.ops[mutant.choice] = _FLIPPED_COMPARE[type(op)]()
    elif isinstance(new, ast.BoolOp):
        new.op = ast.Or() if isinstance(new.op, ast.And) else ast.And()
    elif isinstance(new, ast.UnaryOp):
        return new.operand
    elif isinstance(new, ast.Constant):
        new.value = not new.value if isinstance(new.value, bool) else _new_number(new.value)
    elif isinstance(new, ast.Raise):
        return ast.copy_location(ast.Pass(), node)
    elif isinstance(new, ast.Return):
        new.value = ast.Constant(value=None)
    elif isinstance(new, ast.If):
        new.test = ast.UnaryOp(op=ast.Not(), operand=new.test)
    return new


def _segment_edit(
    source: str, node: ast.AST, new: ast.AST, mutant: Mutant
) -> tuple[int, int, str] | None:
    """(start, end, text): the characters of ``source`` to replace, or None."""
    target = node.test if isinstance(node, ast.If) else node
    start, end = _offset(source, target, "start"), _offset(source, target, "end")
    if start is None or end is None:
        return None
    if mutant.kind == "raise":
        text = "pass"
    elif mutant.kind == "return":
        text = "return None"
    elif mutant.kind == "if":
        text = f"not ({source[start:end]})"
    else:
        text = f"({ast.unparse(new)})"
    return start, end, text


def _offset(source: str, node: ast.AST, which: str) -> int | None:
    line = getattr(node, "lineno" if which == "start" else "end_lineno", None)
    col = getattr(node, "col_offset" if which == "start" else "end_col_offset", None)
    if line is None or col is None:
        return None
    lines = source.splitlines(keepends=True)
    # Columns are UTF-8 byte offsets.
    prefix = lines[line - 1].encode()[:col].decode(errors="replace")
    return sum(len(x) for x in lines[: line - 1]) + len(prefix)


def mutate(source: str, mutant: Mutant) -> str:
    """``source`` with ``mutant`` applied: only its node's text changed when that parses to
    the intended tree, else the whole mutated tree unparsed."""
    expected = ast.parse(source)
    walked = list(_walk(expected))
    if not 0 <= mutant.node < len(walked):
        raise ValueError(f"no node {mutant.node} in the source")
    node, parent, field, index = walked[mutant.node]
    new = _mutated_node(node, mutant)
    assert parent is not None
    if index is None:
        setattr(parent, field, new)
    else:
        getattr(parent, field)[index] = new
    edit = _segment_edit(source, node, new, mutant)
    if edit is not None:
        start, end, text = edit
        candidate = source[:start] + text + source[end:]
        with contextlib.suppress(SyntaxError):
            if ast.dump(ast.parse(candidate)) == ast.dump(expected):
                return candidate
    return ast.unparse(ast.fix_missing_locations(expected)) + "\n"


# ------------------------------------------------------------------------------ running
# With --preload: one process per copy imports the slow, never-mutated modules (torch...)
# once, then forks a child per test run that calls pytest.main, so a run does not pay for
# those imports. It answers each request (a JSON line) with the child's exit code, or null
# when the child ran past its timeout and was killed.
ZYGOTE = r"""
import importlib, json, os, signal, sys, time
for name in filter(None, sys.argv[1].split(",")):
    importlib.import_module(name)
child = 0
def stop(signum, frame):
    if child:
        try:
            os.killpg(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(1)
signal.signal(signal.SIGTERM, stop)
for line in sys.stdin:
    request = json.loads(line)
    child = os.fork()
    if child == 0:
        code = 3
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.setsid()
            fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            import pytest
            code = int(pytest.main(request["args"]))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + request["timeout"] if request["timeout"] else None
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            break
        if deadline is not None and time.monotonic() > deadline:
            os.killpg(child, signal.SIGKILL)
            os.waitpid(child, 0)
            code = None
            break
        time.sleep(0.01)
    child = 0
    sys.stdout.write(json.dumps({"code": code}) + "\n")
    sys.stdout.flush()
"""


def _repo_files(root: Path) -> list[str]:
    """The repository's files: git's (tracked, and untracked but not ignored), or outside
    git every file but hidden directories' and caches'."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=False,
    )
    if listed.returncode == 0:
        return [f for f in listed.stdout.decode().split("\0") if f]
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        files += [os.path.relpath(os.path.join(folder, n), root) for n in names]
    return files


class Runner:
    """Copies of the repository, one per job, and pytest runs in them."""

    def __init__(
        self,
        root: Path,
        module: str,
        pytest_args: Sequence[str],
        python: str,
        preload: Sequence[str] = (),
    ) -> None:
        self.root, self.module, self.python = root, module, python
        self.pytest_args = list(pytest_args)
        self.preload = list(preload)
        self.tmp = Path(tempfile.mkdtemp(prefix="mutation-"))
        self.copies: queue.Queue[Path] = queue.Queue()
        self.zygotes: dict[Path, subprocess.Popen[str]] = {}
        self.procs: set[subprocess.Popen[bytes]] = set()
        self.lock = threading.Lock()
        self.stopping = False

    def make_copies(self, jobs: int) -> None:
        files = _repo_files(self.root)
        for job in range(jobs):
            dest = self.tmp / f"repo-{job}"
            for name in files:
                src = self.root / name
                if not src.is_file():
                    continue  # deleted or moved since it was listed, or a submodule
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target, follow_symlinks=False)
            if not (dest / self.module).is_file():
                (dest / self.module).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.root / self.module, dest / self.module)
            if self.preload:
                self.zygotes[dest] = subprocess.Popen(
                    [self.python, "-c", ZYGOTE, ",".join(self.preload)],
                    cwd=dest,
                    env=self.env(dest),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            self.copies.put(dest)

    def env(self, repo: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def imported_from(self) -> str | None:
        """None when the tests' python imports the module from a copy, else where it does
        import it from (or why it cannot)."""
        name = self.module.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        repo = self.copies.get()
        try:
            code = f"import importlib; print(importlib.import_module({name!r}).__file__)"
            out = subprocess.run(
                [self.python, "-c", code],
                cwd=repo,
                env=self.env(repo),
                capture_output=True,
                text=True,
                timeout=300,
            )
            path = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
            ok = bool(path) and Path(path).resolve() == (repo / self.module).resolve()
            return None if ok else (path or out.stderr[-2000:])
        finally:
            self.copies.put(repo)

    def run(self, source: str, timeout: float | None) -> tuple[str, float, str]:
        """Runs the tests with ``source`` as the module: ("passed" | "failed" | "timeout",
        seconds, the output's tail)."""
        repo = self.copies.get()
        path = repo / self.module
        original = path.read_bytes()
        start = time.monotonic()
        try:
            if self.stopping:
                raise KeyboardInterrupt
            path.write_text(source)
            args = [*PYTEST_FLAGS, *self.pytest_args]
            if repo in self.zygotes:
                status, out = self._run_forked(repo, args, timeout)
            else:
                status, out = self._run_process(repo, args, timeout)
            return status, time.monotonic() - start, out[-3000:]
        finally:
            path.write_bytes(original)
            self.copies.put(repo)

    def _run_process(self, repo: Path, args: list[str], timeout: float | None) -> tuple[str, str]:
        with self.lock:
            if self.stopping:
                raise KeyboardInterrupt
            proc = subprocess.Popen(
                [self.python, "-m", "pytest", *args],
                cwd=repo,
                env=self.env(repo),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.procs.add(proc)
        try:
            out, _ = proc.communicate(timeout=timeout)
            status = "passed" if proc.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            self._kill(proc)
            out, _ = proc.communicate()
            status = "timeout"
        finally:
            with self.lock:
                self.procs.discard(proc)
        return status, out.decode(errors="replace")

    def _run_forked(self, repo: Path, args: list[str], timeout: float | None) -> tuple[str, str]:
        zygote = self.zygotes[repo]
        assert zygote.stdin is not None and zygote.stdout is not None
        log = repo.parent / f"{repo.name}.log"
        request = {"args": args, "timeout": timeout, "log": str(log)}
        zygote.stdin.write(json.dumps(request) + "\n")
        zygote.stdin.flush()
        answer = zygote.stdout.readline()
        if not answer:
            raise KeyboardInterrupt if self.stopping else RuntimeError("the test runner died")
        code = json.loads(answer)["code"]
        status = "timeout" if code is None else "passed" if code == 0 else "failed"
        return status, log.read_text(errors="replace") if log.exists() else ""

    @staticmethod
    def _kill(proc: subprocess.Popen[Any]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: pytest and its children

    def stop(self) -> None:
        """Ends every test run under way; runs asked for later are refused."""
        with self.lock:
            self.stopping = True
            for proc in list(self.procs):
                self._kill(proc)
        for zygote in self.zygotes.values():
            with contextlib.suppress(ProcessLookupError):
                zygote.terminate()  # it kills its running child first

    def close(self) -> None:
        self.stop()
        for zygote in self.zygotes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                zygote.wait(timeout=10)
            self._kill(zygote)
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------- main
def _parse_lines(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    first, _, last = text.partition("-")
    return int(first), int(last or first)


def _root() -> Path:
    out = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
    )
    return Path(out.stdout.strip()) if out.returncode == 0 else Path.cwd()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        usage="%(prog)s MODULE [options] -- PYTEST_ARGS...",
    )
    parser.add_argument("module", help="the module to mutate, a path from the repository root")
    parser.add_argument("--jobs", type=int, default=1, help="test runs at once (default 1)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=0,
        help="seconds per mutant (default: 60, or 5 x the unmutated run's time if longer); "
        "a mutant whose tests run longer is killed",
    )
    parser.add_argument("--min-score", type=float, default=0.0, help="percent; exit 1 below")
    parser.add_argument("--lines", help="only mutants on these lines, e.g. 80-120")
    parser.add_argument("--json", type=Path, help="write every mutant's result here")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--python", default=sys.executable, help="runs pytest (default: this)")
    parser.add_argument(
        "--no-plugin-autoload",
        action="store_true",
        help="run pytest with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1: installed plugins can take "
        "seconds to load, once per mutant; for tests that need none of them",
    )
    parser.add_argument(
        "--preload",
        default="",
        help="modules the module under test does not import from the repository (e.g. "
        "torch,numpy): imported once per job, each test run then forks, saving their import",
    )
    args = parser.parse_args(argv)

    root = _root()
    module_path = (Path.cwd() / args.module).resolve()
    try:
        module = module_path.relative_to(root.resolve()).as_posix()
    except ValueError:
        parser.error(f"{args.module} is not inside the repository {root}")
    source = module_path.read_text()
    mutants = find_mutants(source)
    span = _parse_lines(args.lines)
    if span:
        mutants = [m for m in mutants if span[0] <= m.line <= span[1]]
    if args.list:
        for m in mutants:
            print(f"{module}:{m.line}: {m.description}")
        print(f"{len(mutants)} mutants")
        return 0
    if not pytest_args:
        parser.error("give the tests to run after --, e.g. -- tests/test_x.py")

    preload = [name for name in args.preload.split(",") if name]
    if args.no_plugin_autoload:
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the runs' environment
    runner = Runner(root, module, pytest_args, args.python, preload)
    jobs = max(1, args.jobs)
    pool = concurrent.futures.ThreadPoolExecutor(jobs)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    results: dict[Mutant, tuple[str, float]] = {}
    try:
        runner.make_copies(jobs)
        wrong = runner.imported_from()
        if wrong is not None:
            print(f"the tests would not import {module} from the copy: {wrong}", file=sys.stderr)
            return 2
        status, baseline, output = runner.run(source, None)
        if status != "passed":
            print(f"the tests fail without any mutation:\n{output}", file=sys.stderr)
            return 2
        timeout = args.timeout or max(60.0, 5 * baseline)
        print(
            f"{module}: {len(mutants)} mutants; unmutated run {baseline:.1f} s, "
            f"timeout {timeout:.0f} s, {jobs} job(s)",
            file=sys.stderr,
        )
        futures = {pool.submit(runner.run, mutate(source, m), timeout): m for m in mutants}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            m = futures[future]
            status, seconds, _ = future.result()
            results[m] = (status, seconds)
            mark = "S" if status == "passed" else "T" if status == "timeout" else "."
            print(mark, end="\n" if done % 50 == 0 else "", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        # Stop the runs first: shutting the pool down waits for the runs under way.
        runner.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        runner.close()
        signal.signal(signal.SIGTERM, previous)

    survivors = sorted((m for m in mutants if results[m][0] == "passed"), key=lambda m: m.line)
    lines = source.splitlines()
    for m in survivors:
        print(f"{module}:{m.line}: {m.description}    | {lines[m.line - 1].strip()}")
    total, killed = len(mutants), len(mutants) - len(survivors)
    score = 100.0 * killed / total if total else 100.0
    elapsed = time.monotonic() - started
    print(f"killed/total = {killed}/{total} = {score:.1f}%  ({elapsed:.0f} s)")
    if args.json:
        report = {
            "module": module,
            "killed": killed,
            "total": total,
            "score": round(score, 1),
            "seconds": round(elapsed, 1),
            "survivors": [f"{module}:{m.line}: {m.description}" for m in survivors],
            "mutants": [
                {**asdict(m), "status": results[m][0], "seconds": round(results[m][1], 2)}
                for m in mutants
            ],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if score >= args.min_score else 1


if __name__ == "__main__":
    sys.exit(main())
