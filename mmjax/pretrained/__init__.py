"""Pretrained encoders: Hugging Face checkpoints and other mmjax runs.

`mmjax.pretrained.load` initialises encoders (`initialize_encoders`,
`pretrained_encoder_config`, `load_hf_encoder`, `load_workdir_encoder`);
`mmjax.pretrained.families.FAMILIES` is the registry of checkpoint families
(one module each, imported on its first lookup); `mmjax.pretrained.clip`
makes a full CLIP checkpoint a contrastive model (`clip_model_config`,
`load_clip`, `embed`, `zero_shot_logits`).
"""
