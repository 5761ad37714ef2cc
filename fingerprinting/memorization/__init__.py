"""Memorization taxonomy kernels (after EleutherAI's "Recite, Reconstruct, Recollect").

A sample is 64 tokens of a corpus: a 32-token prompt and its 32-token true
continuation. The kernels here score samples with a causal LM (greedy
decoding, perplexities), compute per-sample features (duplicates, token
frequencies, templating, Huffman length, semantic / textual matches, code vs
natural language) and fit the taxonomy (recitation / reconstruction /
recollection) and its predictive model.

Modules: :mod:`.corpus`, :mod:`.scoring`, :mod:`.features`,
:mod:`.code_classifier`, :mod:`.taxonomy`, :mod:`.planted`. Nothing here
imports Prefect, dbt or the lake: callers wire the kernels into flows.
"""

from __future__ import annotations

SAMPLE_LEN = 64
PROMPT_LEN = 32
GEN_LEN = 32
