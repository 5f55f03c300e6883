"""Building the network from a config and loading official checkpoints, from files or the Hugging Face hub."""
