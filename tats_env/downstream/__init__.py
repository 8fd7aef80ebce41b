"""Downstream evaluation of a pre-trained encoder: action-recognition fine-tuning, linear probing,
and the CPU protocol (frozen probe, short fine-tune, from-scratch ViT, 3D-CNN positive control)."""

from tats_env.lazy import lazy_attributes, lazy_table

_MODULES = {
    "classify": ("VideoClassifier", "random_encoder"),
    "clipset": ("ClipSet", "load_clipset"),
    "control": ("Conv3dControl", "train_control"),
    "finetune": ("evaluate", "finetune"),
    "finetune_config": ("FinetuneConfig",),
    "pooling": ("pool_tokens",),
    "probe": ("ProbeResult", "extract_features", "fit_probe", "init_head_from_probe", "linear_probe"),
    "protocol": ("RANDOM_INIT", "RankingRefused", "binomial_sd", "rank_encoders", "ranking_check",
                 "run_protocol", "short_finetune", "summarize"),
    "protocol_config": ("ControlConfig", "Pooling", "ProbeConfig", "ProtocolConfig", "ShortRecipe"),
    "supervised": ("SupervisedResult", "predict", "train_classifier"),
}
# The names above are imported on first use (PEP 562): the config classes without torch.
_LAZY = lazy_table(_MODULES, prefix="tats_env.downstream.")
__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "VideoClassifier", "random_encoder", "FinetuneConfig", "evaluate", "finetune",
    "ClipSet", "load_clipset", "ControlConfig", "Conv3dControl", "train_control",
    "Pooling", "pool_tokens", "ProbeConfig", "ProbeResult", "extract_features", "fit_probe", "init_head_from_probe",
    "linear_probe", "RANDOM_INIT", "ProtocolConfig", "RankingRefused", "binomial_sd", "rank_encoders",
    "ranking_check", "run_protocol", "short_finetune", "summarize", "ShortRecipe", "SupervisedResult", "predict", "train_classifier",
]
