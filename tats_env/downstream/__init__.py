"""Downstream evaluation of a pre-trained encoder: action-recognition fine-tuning and linear probing."""

from tats_env.downstream.classify import VideoClassifier, random_encoder
from tats_env.downstream.finetune import FinetuneConfig, evaluate, finetune

__all__ = ["VideoClassifier", "random_encoder", "FinetuneConfig", "evaluate", "finetune"]
