"""Models: GFM encoders and their checkpoints, decoders, finetuning depth, the assembled segmenter."""
