"""Best configs exported to other code: the Cryo-Bench (PANGAEA) command line and a TerraTorch
config, each saying what it cannot reproduce."""
