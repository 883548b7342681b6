"""Fused post-processing of significance scores: flat ragged tensors in, counts and rewards out."""
