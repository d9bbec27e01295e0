"""``make bench``: our intake and pipeline measured beside two baselines on this machine."""
