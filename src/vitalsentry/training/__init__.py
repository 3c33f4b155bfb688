"""Training loops: pre-training, fine-tuning, augmentation."""
