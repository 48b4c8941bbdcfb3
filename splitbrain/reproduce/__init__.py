"""Reproductions of the paper's tables on the data at hand: pre-training and probing every row
on one recipe, and the paper's claims checked against the result."""
