"""The knowledge lab: how a small language model acquires facts, reproduced at laptop scale.

Synthetic biographies (`data`), a tiny transformer (`model`), probes and fits (`measure`), the
training loop (`train`), experiments (a)-(g) (`experiments`), plots and the HTML lab report
(`plots`, `report`), and the `tunelab-lab ...` commands (`cli`). Reference: Zucchet et al. 2025,
"How do language models learn facts? Dynamics, curricula and hallucinations", arXiv:2503.21676.
"""
