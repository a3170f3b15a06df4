"""Analysis tools for trained multimodal models, outside the training loop:
`similarity` (linear CKA between two representations of the same examples),
`mutual_information` (the KSG k-nearest-neighbour mutual information
estimator, and a PCA-reduced variant for wide representations),
`robustness_metrics` (MultiBench's relative and effective robustness of an
accuracy-versus-corruption curve) and `corruptions` (jit-compatible audio and
image corruptions at graded levels, with a registry of default sweeps).
"""
