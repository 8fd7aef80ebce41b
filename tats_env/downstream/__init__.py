"""Downstream evaluation of a pre-trained encoder: action-recognition fine-tuning, linear probing,
and the CPU protocol (frozen probe, short fine-tune, from-scratch ViT, 3D-CNN positive control)."""

from tats_env.downstream.classify import VideoClassifier, random_encoder
from tats_env.downstream.clipset import ClipSet, load_clipset
from tats_env.downstream.control import ControlConfig, Conv3dControl, train_control
from tats_env.downstream.finetune import FinetuneConfig, evaluate, finetune
from tats_env.downstream.pooling import Pooling, pool_tokens
from tats_env.downstream.probe import (
    ProbeConfig, ProbeResult, extract_features, fit_probe, init_head_from_probe, linear_probe,
)
from tats_env.downstream.protocol import (
    RANDOM_INIT, ProtocolConfig, RankingRefused, binomial_sd, rank_encoders, ranking_check, run_protocol,
    short_finetune, summarize,
)
from tats_env.downstream.supervised import ShortRecipe, SupervisedResult, predict, train_classifier

__all__ = [
    "VideoClassifier", "random_encoder", "FinetuneConfig", "evaluate", "finetune",
    "ClipSet", "load_clipset", "ControlConfig", "Conv3dControl", "train_control",
    "Pooling", "pool_tokens", "ProbeConfig", "ProbeResult", "extract_features", "fit_probe", "init_head_from_probe",
    "linear_probe", "RANDOM_INIT", "ProtocolConfig", "RankingRefused", "binomial_sd", "rank_encoders",
    "ranking_check", "run_protocol", "short_finetune", "summarize", "ShortRecipe", "SupervisedResult", "predict", "train_classifier",
]
