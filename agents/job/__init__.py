"""The main job (``experiments/train_ppo.py``): config and checks, the pre-training loop, run folder, checkpoints,
logging and progress, callbacks and guards, torch.distributed."""
