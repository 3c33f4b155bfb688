"""Models: pure ``nn.Module`` definitions, no I/O."""
