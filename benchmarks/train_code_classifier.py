"""Rebuild the shipped code-vs-natural-language classifier and print held-back accuracy.

    python -m benchmarks.train_code_classifier [--out DIR]

Same as ``python -m fingerprinting.memorization.code_classifier --train``:
collects snippets of code and prose found on this machine, trains the
hashed character n-gram logistic regression, holds back one fifth of the
source files (by a hash of the path) and writes
``helper_data/code_classifier/code_classifier.{npz,json}`` (or ``--out``).
Deterministic for the same files.
"""

from __future__ import annotations

import argparse

from fingerprinting.memorization.code_classifier import train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="output folder (default: the shipped location)")
    args = ap.parse_args(argv)
    meta = train(args.out)
    print(f"held-back accuracy: {meta['heldout_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
