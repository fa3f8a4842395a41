"""The phone case: next-word prediction for a keyboard, trained on what each phone's user writes.

The text ships with Python: each "user" is the docstrings of one group of standard-library modules
(``USERS``), read with :mod:`ast` from the source files, never imported, so each user has their own topics
and style (non-IID by user). Words are lower-case runs of letters; each docstring gives windows of
``CONTEXT`` words and the word after them. The vocabulary is the ``VOCABULARY_SIZE`` most frequent words over
every user's docstrings (ties alphabetical) after ``<unk>``, which stands for any other word. The spec pins it
as the categories of its context columns and the classes of its label, so the on-chain spec digest pins the
vocabulary too (:func:`vocabulary_digest` is its own sha256); the vocabulary was built from Python 3.11's
library, and another version's docstrings just map more words to ``<unk>``.

Every user's windows are shuffled with a seed; a fifth of each is the task owner's held-out set, and each
contributor keeps the rest of its user's (at most ``WINDOWS_PER_USER``). The model is an embedding and a GRU
(``model.name: layers``); validators report perplexity and top-3 accuracy.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sysconfig
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from cotrain.cases import CaseData, Table, check_contributors
from cotrain.errors import ConfigError

SUMMARY = "next-word prediction on each user's own text (stdlib docstrings), embedding + GRU; perplexity"
#: Each user: a name and the standard-library modules or packages whose docstrings they wrote.
USERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mail", ("email", "smtplib", "imaplib", "poplib", "mailbox")),
    ("web", ("http", "urllib", "html", "xml")),
    ("async", ("asyncio", "concurrent", "selectors")),
    ("testing", ("unittest", "doctest", "pdb")),
)
CONTEXT = 4
VOCABULARY_SIZE = 1000
UNKNOWN = "<unk>"
WINDOWS_PER_USER = 4000
HELD_OUT_FRACTION = 0.2
SEED = 0
_WORD = re.compile(r"[a-z]+")


def _sources(names: Sequence[str]) -> Iterator[Path]:
    """The ``.py`` files of the named stdlib modules and packages, in sorted order (tests excluded)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in names:
        package = stdlib / name
        if package.is_dir():
            yield from sorted(p for p in package.rglob("*.py") if "test" not in p.relative_to(stdlib).parts)
        elif (stdlib / f"{name}.py").is_file():
            yield stdlib / f"{name}.py"
        else:
            raise ConfigError(f"no standard-library module {name!r} in {stdlib}")


def user_texts(names: Sequence[str]) -> list[list[str]]:
    """The words of every docstring of the named modules (module, class and function docstrings, in file
    order), one list of words per docstring."""
    texts = []
    for path in _sources(names):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    texts.append(_WORD.findall(doc.lower()))
    return texts


def build_vocabulary() -> list[str]:
    """``<unk>`` and the ``VOCABULARY_SIZE`` most frequent words over every user's docstrings."""
    counts: Counter[str] = Counter()
    for _, names in USERS:
        for words in user_texts(names):
            counts.update(words)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [UNKNOWN, *(word for word, _ in ranked[:VOCABULARY_SIZE])]


def vocabulary_digest(vocabulary: Sequence[str]) -> str:
    """sha256 of the vocabulary written one word per line (UTF-8, each line ending in a newline), as hex."""
    return hashlib.sha256("".join(f"{word}\n" for word in vocabulary).encode("utf-8")).hexdigest()


def windows(texts: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> list[list[str]]:
    """Every ``CONTEXT`` consecutive words of a docstring and the word after them, unknown words as
    ``<unk>``; windows whose next word is ``<unk>`` are left out (a keyboard does not suggest it)."""
    known = set(vocabulary)
    rows = []
    for words in texts:
        mapped = [word if word in known else UNKNOWN for word in words]
        for end in range(CONTEXT, len(mapped)):
            if mapped[end] != UNKNOWN:
                rows.append(mapped[end - CONTEXT : end + 1])
    return rows


HEADER = [*(f"w{i + 1}" for i in range(CONTEXT)), "next"]


def case_data(contributors: int, vocabulary: Sequence[str] | None = None) -> CaseData:
    """One user per contributor (``USERS`` in order), and a fifth of every user's windows held out."""
    check_contributors(contributors, [name for name, _ in USERS], "users")
    vocabulary = build_vocabulary() if vocabulary is None else vocabulary
    shards: list[Table] = []
    held_out: list[list[str]] = []
    for i, (_, names) in enumerate(USERS):
        rows = windows(user_texts(names), vocabulary)
        order = np.random.Generator(np.random.PCG64(SEED + i)).permutation(len(rows))
        cut = round(len(rows) * HELD_OUT_FRACTION)
        held_out += [rows[j] for j in order[:cut][: WINDOWS_PER_USER // 4]]
        if i < contributors:
            shards.append((list(HEADER), [rows[j] for j in order[cut:][:WINDOWS_PER_USER]]))
    return CaseData(shards, (list(HEADER), held_out))
