"""The per-frame stages, in the order a frame meets them: preprocess, segment, smooth, matte, composite (and its backgrounds)."""
