"""Real text available offline: the running Python's standard library.

Three domains, each built deterministically (sorted module and member order):

* ``docs``: docstrings of modules, classes and functions (English prose);
* ``code``: source code of pure-Python modules;
* ``chat``: "User: what does X do? / Assistant: <first paragraph>" turns.

Nothing is shipped: the text is read from the interpreter at build time and
its SHA-256 is recorded in the zoo manifest.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import warnings
from dataclasses import dataclass
from functools import lru_cache

DOC_MODULES = [
    "abc", "argparse", "array", "base64", "bisect", "calendar", "cmath", "codecs", "collections",
    "colorsys", "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "doctest", "email.message", "enum", "fileinput", "fnmatch", "fractions", "functools",
    "getopt", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html", "html.parser",
    "http.client", "inspect", "io", "ipaddress", "itertools", "json", "locale", "logging", "lzma",
    "math", "mimetypes", "numbers", "operator", "os", "os.path", "pathlib", "pickle", "pprint",
    "queue", "random", "re", "sched", "secrets", "shelve", "shlex", "shutil", "socket", "sqlite3",
    "statistics", "string", "struct", "subprocess", "tarfile", "tempfile", "textwrap", "threading",
    "time", "timeit", "tokenize", "traceback", "types", "typing", "unittest", "urllib.parse",
    "uuid", "warnings", "wave", "weakref", "xml.dom.minidom", "zipfile", "zlib",
]
CODE_MODULES = [
    "textwrap", "string", "heapq", "bisect", "fnmatch", "shlex", "glob", "colorsys", "queue",
    "sched", "calendar", "difflib", "fractions", "statistics", "contextlib", "copy", "pprint",
]


@dataclass(frozen=True)
class Corpus:
    docs: str
    code: str
    chat: str

    def sha256(self) -> str:
        h = hashlib.sha256()
        for part in (self.docs, self.code, self.chat):
            h.update(part.encode())
        return h.hexdigest()[:16]


def _members(mod):
    for name in sorted(vars(mod)):
        if name.startswith("_"):
            continue
        obj = getattr(mod, name, None)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", None) == mod.__name__:
            yield f"{mod.__name__}.{name}", obj


@lru_cache(maxsize=1)
def build_corpus(max_chars: int = 600_000) -> Corpus:
    docs, chat, code = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mods = []
        for name in DOC_MODULES:
            try:
                mods.append(importlib.import_module(name))
            except Exception:  # a module missing from a slim Python build is fine
                continue
        for mod in mods:
            doc = inspect.getdoc(mod)
            if doc:
                docs.append(doc)
            for qual, obj in _members(mod):
                d = inspect.getdoc(obj)
                if not d or len(d) < 40:
                    continue
                docs.append(d)
                first = d.split("\n\n")[0].replace("\n", " ").strip()
                chat.append(f"User: What does {qual} do?\nAssistant: {first}\n")
        for name in CODE_MODULES:
            try:
                code.append(inspect.getsource(importlib.import_module(name)))
            except Exception:
                continue
    return Corpus(
        docs="\n\n".join(docs)[:max_chars],
        code="\n\n".join(code)[: max_chars // 2],
        chat="\n".join(chat)[: max_chars // 3],
    )
