"""The PhysioNet/CinC 2019 sepsis benchmark: causal hourly risk, clinical utility, baselines."""
