"""Reading and writing files: capture (cameras and files as cameras), video decoding, images, atomic outputs."""
