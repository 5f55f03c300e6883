"""The SAM 2 network: image encoder (Hiera + FPN neck), prompt encoder, mask decoder, memory attention and
memory encoder, assembled in `sam2.SAM2Model`. Imports nothing from `images` or `video`."""
