"""Analysis tools for trained multimodal models, outside the training loop:
`similarity` (linear CKA between two representations of the same examples),
`mutual_information` (the KSG k-nearest-neighbour mutual information
estimator, and a PCA-reduced variant for wide representations),
`robustness_metrics` (MultiBench's relative and effective robustness of an
accuracy-versus-corruption curve, and the missing-modality target of a
corrupted modality) and `corruptions` (the registry of corruption families
at 5 severities each; the jit-compatible functions are in
`image_corruptions`, ImageNet-C style, and `audio_corruptions`).
"""
